{#
  Incremental nightly builds (see DECISIONLOG.md, "Incremental facts", and docs/incremental.md).

  The large facts are `incremental` on DuckDB and plain tables elsewhere (dbt-spark has no delete+insert;
  a Spark build is always a full build). A run rebuilds the days in [var min_date, var max_date] (the
  Dagster dbt asset sets them from the run's partition and the raw days that changed since the last
  build); without the vars the window is every day, so a plain `dbt build` rebuilds everything, and
  `--full-refresh` recreates the tables.
#}

{# 'incremental' where the date-window strategy below exists (DuckDB), else 'table'. #}
{% macro incremental_on_duckdb() -%}
    {{ return('incremental' if target.type == 'duckdb' else 'table') }}
{%- endmacro %}

{# A window bound as an ISO date string, shifted by `days`; none when the var is unset. #}
{% macro window_bound(name, days=0) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {#- fromisoformat rejects anything that is not a plain date, so a var never reaches the SQL unchecked -#}
    {%- set day = modules.datetime.date.fromisoformat(value | string | trim) + modules.datetime.timedelta(days=days) -%}
    {{ return(day.isoformat()) }}
{%- endmacro %}

{#
  `column` (a date) inside the window, widened by `lookback_days` before min_date and `lookahead_days`
  after max_date. Always true when neither var is set (the full window).
#}
{% macro in_window(column, lookback_days=0, lookahead_days=0) -%}
    {%- set lo = shoplens.window_bound('min_date', -lookback_days) -%}
    {%- set hi = shoplens.window_bound('max_date', lookahead_days) -%}
    {%- if lo is none and hi is none -%}
        (1 = 1)
    {%- elif hi is none -%}
        ({{ column }} >= cast('{{ lo }}' as date))
    {%- elif lo is none -%}
        ({{ column }} <= cast('{{ hi }}' as date))
    {%- else -%}
        ({{ column }} between cast('{{ lo }}' as date) and cast('{{ hi }}' as date))
    {%- endif -%}
{%- endmacro %}

{#
  Custom incremental strategy `date_window` (config incremental_strategy='date_window'):
    1. delete the target rows whose `window_column` lies in the window (widened back by
       `window_lookback_days`), so a day that lost rows (a corrected, re-ingested partition) loses them
       here too, and a day with no rows left is emptied;
    2. delete the target rows whose unique_key the new rows carry (rows rebuilt outside the window, such
       as a new SKU's whole history, replace their old version instead of duplicating it);
    3. insert the new rows.
  dbt's own delete+insert only does step 2, which leaves rows of an emptied day behind. All three
  statements run in the model's transaction: a failure leaves the table as it was.
#}
{% macro get_incremental_date_window_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set keys = [unique_key] if unique_key is string else (unique_key or []) -%}
    {%- set column = config.get('window_column') -%}
    {%- if not column -%}
        {{ exceptions.raise_compiler_error("incremental_strategy 'date_window' needs config window_column") }}
    {%- endif -%}
    {%- set lookback = config.get('window_lookback_days', 0) -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {#- what this run replaces, for the publish step (pipelines/assets/transform.py, `publish`) -#}
    {{ shoplens.log_changes(target, column, '(select ' ~ adapter.quote(column) ~ ' from ' ~ target ~ ' where '
        ~ shoplens.in_window(adapter.quote(column), lookback) ~ ' union select ' ~ adapter.quote(column)
        ~ ' from ' ~ source ~ ')') }};
    delete from {{ target }}
    where {{ shoplens.in_window(adapter.quote(column), lookback) }};
    {% if keys %}
    delete from {{ target }} as dbt_window_target
    using {{ source }} as dbt_window_source
    where {% for key in keys -%}
        dbt_window_target.{{ adapter.quote(key) }} = dbt_window_source.{{ adapter.quote(key) }}{{ ' and ' if not loop.last }}
    {%- endfor %};
    {% endif %}
    insert into {{ target }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }} from {{ source }}
{%- endmacro %}

{#
  Post-hook of fct_sku_daily_demand and fct_daily_sales (a `date` column zero-filled over the order
  dates): the range runs from the first to the last order date, so when a corrected day shrinks that
  range, the days now outside it go (a full build would not have them). A no-op statement on a full
  build and on engines without incremental models.
#}
{% macro trim_to_order_dates() -%}
    {%- if is_incremental() -%}
    {%- set outside -%}
    not exists (select 1 from {{ ref('fct_order_lines') }})
       or {{ adapter.quote('date') }} < (select min(order_date) from {{ ref('fct_order_lines') }})
       or {{ adapter.quote('date') }} > (select max(order_date) from {{ ref('fct_order_lines') }})
    {%- endset -%}
    {{ shoplens.log_changes(this, 'date', '(select ' ~ adapter.quote('date') ~ ' from ' ~ this ~ ' where ' ~ outside ~ ')') }};
    delete from {{ this }}
    where {{ outside }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#
  The orders an incremental run must rebuild rows of, as a subquery of order_id: every order with a
  shipment shipped in the window, and every order placed in the window. A shipment-level row depends on
  its order (customer, lines) and an order-level row on all of its shipments, which ship on or after the
  order day, on any later day. `shipped_in_window` is the predicate on `shipments` (for the raw staging
  view, `raw_shipped_in_window()`, which lets the partition filter skip the other days' files);
  `orders` is any relation with order_id and order_date (int_orders, fct_order_lines).
#}
{% macro changed_orders(shipments, shipped_in_window, orders) -%}
    select order_id from {{ shipments }} where {{ shipped_in_window }}
    union
    select order_id from {{ orders }} where {{ shoplens.in_window('order_date') }}
{%- endmacro %}

{# Raw shipments shipped in the window: partition_date (the shipping day) is a stored Parquet column. #}
{% macro raw_shipped_in_window() -%}
    ({{ shoplens.in_window('partition_date') }} and {{ shoplens.in_window('cast(shipped_ts as date)') }})
{%- endmacro %}

{#
  The change log the publish step reads (pipelines/assets/transform.py, `publish`): one row per value of
  an incremental model's window column whose rows a run replaced, or one `full_build` row when the model
  was built from scratch. Publish then copies only those days of the big facts into the serving schema
  (instead of 48.7 M order lines every night at the large size) and empties the log in its transaction;
  with no log it copies everything. The statements run in the model's transaction, so a failed build
  logs nothing. DuckDB only (elsewhere the models are tables and publish copies them).
#}
{% macro change_log_relation(relation) -%}
    {{ return(api.Relation.create(database=relation.database, schema=relation.schema, identifier='_shoplens_changes', type='table')) }}
{%- endmacro %}

{#
  on-run-start: the log exists before any model runs (created inside two models' concurrent transactions,
  DuckDB would report a write-write conflict on the catalog).
#}
{% macro create_change_log() -%}
    {%- if target.type == 'duckdb' -%}
    {%- set relation = api.Relation.create(database=target.database, schema=target.schema, identifier='_shoplens_changes') -%}
    create schema if not exists {{ relation.without_identifier() }};
    create table if not exists {{ relation }}
        (model varchar, window_value date, full_build boolean, logged_at timestamp)
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{# Log the distinct `column` values of `values_sql` (a subquery over the model) as replaced. #}
{% macro log_changes(relation, column, values_sql) -%}
    insert into {{ shoplens.change_log_relation(relation) }}
    select distinct '{{ relation.identifier }}', cast({{ adapter.quote(column) }} as date), false, current_timestamp::timestamp
    from {{ values_sql }} as changed_values
{%- endmacro %}

{# Pre-hook of every model: an incremental model built from scratch (first or full-refresh build) logs it. #}
{% macro record_full_build() -%}
    {%- if target.type == 'duckdb' and config.get('materialized') == 'incremental' and not is_incremental() -%}
    insert into {{ shoplens.change_log_relation(this) }} values ('{{ this.identifier }}', null, true, current_timestamp::timestamp)
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
