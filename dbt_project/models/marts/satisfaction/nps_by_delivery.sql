{# NPS of orders delivered on time vs late, one row per outcome and kind. #}
select
    delivery_status,
    score_kind,
    {{ shoplens.nps_measure_label('score_kind') }} as measure_label,
    {{ shoplens.nps_aggregates('bucket') }}
from {{ ref('int_review_scores') }}
where bucket is not null
    and delivery_status in ('on_time', 'late')
group by delivery_status, score_kind
