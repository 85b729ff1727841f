{#
  The combination of columns is unique (a composite key). Hand-written rather than taken from
  dbt_utils so the project needs no `dbt deps` (no network at build time, one less moving part).
  The SQL dispatches (macros/unique_combination.sql): DuckDB groups a 64-bit hash of the key first.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{{ adapter.dispatch('test_unique_combination_of_columns', 'shoplens')(model, combination_of_columns) }}

{% endtest %}
