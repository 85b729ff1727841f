{# NPS in long format: one row per dimension (category, region, carrier), value and kind. #}
{%- set dimensions = ['category', 'region', 'carrier'] -%}
with

scores as (

    select * from {{ ref('int_review_scores') }} where bucket is not null

)

{% for dimension in dimensions %}
select
    '{{ dimension }}' as dimension,
    {{ dimension }} as dimension_value,
    score_kind,
    {{ shoplens.nps_measure_label('score_kind') }} as measure_label,
    {{ shoplens.nps_aggregates('bucket') }}
from scores
group by {{ dimension }}, score_kind
{% if not loop.last %}union all{% endif %}
{% endfor %}
