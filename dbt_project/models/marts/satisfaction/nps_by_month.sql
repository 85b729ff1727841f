{# NPS per month of the answer, one row per kind (survey NPS and star proxy are never mixed). #}
select
    review_month,
    score_kind,
    {{ shoplens.nps_measure_label('score_kind') }} as measure_label,
    {{ shoplens.nps_aggregates('bucket') }}
from {{ ref('int_review_scores') }}
where bucket is not null
group by review_month, score_kind
