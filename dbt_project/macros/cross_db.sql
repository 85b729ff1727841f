{#
  Cross-database helpers. The marts call these instead of engine-specific SQL so the same project
  builds on DuckDB (default) and on Spark (dbt-spark, a later issue). Each macro dispatches:
  `<adapter>__name` wins over `default__name`. dbt's own cross-database macros (dbt.datediff,
  dbt.date_trunc, dbt.dateadd, dbt.concat, dbt.safe_cast) are used directly where they exist.
#}

{# A double-precision float type. dbt.type_float() is REAL (4 bytes) on DuckDB: too coarse for rates. #}
{% macro type_double() %}{{ return(adapter.dispatch('type_double', 'shoplens')()) }}{% endmacro %}
{% macro default__type_double() %}double precision{% endmacro %}
{% macro duckdb__type_double() %}double{% endmacro %}
{% macro spark__type_double() %}double{% endmacro %}

{# numerator / denominator as a double; null (not an error) when the denominator is 0 or null. #}
{% macro safe_divide(numerator, denominator) -%}
    case
        when ({{ denominator }}) is null or ({{ denominator }}) = 0 then null
        else cast({{ numerator }} as {{ shoplens.type_double() }}) / cast({{ denominator }} as {{ shoplens.type_double() }})
    end
{%- endmacro %}

{# Continuous percentile (linear interpolation) of an expression, as an aggregate. #}
{% macro percentile_cont_agg(expression, fraction) %}
    {{ return(adapter.dispatch('percentile_cont_agg', 'shoplens')(expression, fraction)) }}
{% endmacro %}
{% macro default__percentile_cont_agg(expression, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expression }})
{%- endmacro %}
{% macro duckdb__percentile_cont_agg(expression, fraction) -%}
    quantile_cont({{ expression }}, {{ fraction }})
{%- endmacro %}
{% macro spark__percentile_cont_agg(expression, fraction) -%}
    percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{#
  One row per calendar day between two date columns of `relation_sql` (inclusive), as column
  `date_day`. `relation_sql` is a CTE name or subquery with one row holding the bounds.
  dbt's own date_spine needs the bounds at compile time (an introspective query), which unit tests
  cannot run and which would freeze the bounds into the compiled SQL; this keeps them in the data.
#}
{% macro dates_between(relation_sql, start_column, end_column) %}
    {{ return(adapter.dispatch('dates_between', 'shoplens')(relation_sql, start_column, end_column)) }}
{% endmacro %}
{% macro default__dates_between(relation_sql, start_column, end_column) -%}
    select cast(generate_series({{ start_column }}, {{ end_column }}, interval '1 day') as date) as date_day
    from {{ relation_sql }}
{%- endmacro %}
{% macro duckdb__dates_between(relation_sql, start_column, end_column) -%}
    select cast(unnest(generate_series(cast({{ start_column }} as date), cast({{ end_column }} as date), interval 1 day)) as date) as date_day
    from {{ relation_sql }}
    where {{ start_column }} is not null and {{ end_column }} is not null
{%- endmacro %}
{% macro spark__dates_between(relation_sql, start_column, end_column) -%}
    select explode(sequence(cast({{ start_column }} as date), cast({{ end_column }} as date), interval 1 day)) as date_day
    from {{ relation_sql }}
    where {{ start_column }} is not null and {{ end_column }} is not null
{%- endmacro %}

{# Whole calendar days from one date to another (dates, not timestamps: 23:59 -> 00:01 is one day). #}
{% macro days_between(start_date, end_date) -%}
    {{ dbt.datediff("cast(" ~ start_date ~ " as date)", "cast(" ~ end_date ~ " as date)", "day") }}
{%- endmacro %}

{# Fractional days from one timestamp to another (delivery delays are hours, not calendar days). #}
{% macro fractional_days_between(start_ts, end_ts) -%}
    (cast({{ dbt.datediff(start_ts, end_ts, "second") }} as {{ shoplens.type_double() }}) / 86400.0)
{%- endmacro %}

{# First day of the month / ISO week (Monday) of a date or timestamp, as a date. #}
{% macro month_start(expression) -%}
    cast({{ dbt.date_trunc("month", expression) }} as date)
{%- endmacro %}
{% macro week_start(expression) -%}
    cast({{ dbt.date_trunc("week", expression) }} as date)
{%- endmacro %}

{#- A struct of the named columns, with the columns' names as field names. Structs compare field by field,
    so min(<struct>) over a group is the whole first row by those fields: one aggregation instead of a
    window sort (traffic_funnel's first event per session). -#}
{% macro named_struct(columns) %}{{ return(adapter.dispatch('named_struct', 'shoplens')(columns)) }}{% endmacro %}
{% macro default__named_struct(columns) -%}
    struct_pack({% for c in columns %}{{ c }} := {{ c }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}
{% macro spark__named_struct(columns) -%}
    named_struct({% for c in columns %}'{{ c }}', {{ c }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{#- `value` of the row with the largest `keys` (a list of SQL expressions, compared in order, like an ORDER
    BY ... DESC over them), as one aggregate instead of a window sort: int_orders' main category over every
    order line took 92 thread-seconds at the large benchmark size as a row_number() window. The value may
    be NULL (DuckDB's arg_max_null, Spark's max_by); give the keys no NULLs (compare a flag first). -#}
{% macro arg_max_by(value, keys) %}{{ return(adapter.dispatch('arg_max_by', 'shoplens')(value, keys)) }}{% endmacro %}
{% macro default__arg_max_by(value, keys) -%}
    arg_max_null({{ value }}, struct_pack({% for k in keys %}k{{ loop.index }} := {{ k }}{% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}
{% macro spark__arg_max_by(value, keys) -%}
    max_by({{ value }}, named_struct({% for k in keys %}'k{{ loop.index }}', {{ k }}{% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}
