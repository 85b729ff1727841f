{#
  Seeds on Spark. dbt-spark 1.11 (`method: session`) fills a seed's INSERT by plain string formatting of
  its bindings: a value holding a single quote (the segment "Can't Lose Them") breaks the statement, and
  an empty cell loads as the text 'None' (dbt-core #6471 / dbt-spark #572 are the same escaping gap).
  This Spark-only override (dispatch picks the root project's `spark__load_csv_rows` over the adapter's)
  writes every value as an escaped Spark literal instead: backslash escapes, because Spark SQL does not
  read '' as an escaped quote, and `null` for an empty cell. Batches and casts are dbt-spark's.
  DuckDB seeds are untouched (dbt-duckdb loads them its own way).
#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set batch_size = get_batch_size() -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(batch_size) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    cast({{ shoplens.spark_string_literal(row[loop.index0]) }} as {{ type }})
                    {%- if not loop.last %},{% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.first -%}{%- do statements.append(sql) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}

{# A Python value as a Spark SQL string literal (or null); the caller casts it to the column type. #}
{% macro spark_string_literal(value) -%}
    {%- if value is none -%}
        null
    {%- else -%}
        '{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") }}'
    {%- endif -%}
{%- endmacro %}
