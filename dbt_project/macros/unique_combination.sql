{#
  SQL of the unique_combination_of_columns data test (tests/generic/). Failures are the key values that
  occur more than once, with their row count, on every adapter.
#}
{% macro default__test_unique_combination_of_columns(model, combination_of_columns) %}
{%- set columns = combination_of_columns | join(', ') %}
select {{ columns }}, count(*) as n_rows
from {{ model }}
group by {{ columns }}
having count(*) > 1
{% endmacro %}

{#
  DuckDB: grouping hundreds of millions of rows by several text columns builds (and spills) a hash table
  of the strings; grouping a 64-bit hash of them first is about four times faster (the 339 M traffic
  events of the large benchmark: 164 s -> about 40 s). Only the keys whose hash repeats, normally none,
  are then grouped by their real values, so a hash collision is never reported as a duplicate, and a
  NULL in a key column groups like GROUP BY groups it (hash(NULL) is a constant).
#}
{% macro duckdb__test_unique_combination_of_columns(model, combination_of_columns) %}
{%- set columns = combination_of_columns | join(', ') %}
{#- The model is read twice on purpose: a CTE read twice would be materialized whole (17 GB of spill for
    the traffic events), while the second scan only hashes again and keeps the rare repeated hashes. #}
with repeated_hashes as (

    select hash({{ columns }}) as dbt_key_hash
    from {{ model }}
    group by 1
    having count(*) > 1

),

candidates as (

    select {{ columns }}
    from {{ model }}
    where hash({{ columns }}) in (select dbt_key_hash from repeated_hashes)

)

select {{ columns }}, count(*) as n_rows
from candidates
group by {{ columns }}
having count(*) > 1
{% endmacro %}
