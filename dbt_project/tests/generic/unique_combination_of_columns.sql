{#
  The combination of columns is unique (a composite key). Hand-written rather than taken from
  dbt_utils so the project needs no `dbt deps` (no network at build time, one less moving part).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
