{#
  Every row satisfies a boolean SQL expression; the rows where it is false are the failures.
  On a column, the expression is appended to the column name (`expression: ">= 0"`).
  Hand-written rather than taken from dbt_utils so the project needs no `dbt deps`
  (no network at build time, one less moving part).
#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not ({% if column_name %}{{ column_name }} {% endif %}{{ expression }})

{% endtest %}
