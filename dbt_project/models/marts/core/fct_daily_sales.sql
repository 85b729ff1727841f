{#
  Shop-wide sales per day, zero-filled from the first to the last order date.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a day's row depends on that day's lines
  only (its distinct orders and customers too), plus the date range. A run rebuilds the window's days and
  the days the table does not hold yet (the range grew); the post-hook drops days that left the range.
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='date',
        unique_key='date',
        on_schema_change='fail',
        post_hook="{{ shoplens.trim_to_order_dates() }}",
    )
}}
{%- set rebuilt_day -%}
    ({{ shoplens.in_window('DAY') }}
     or (select built_first from built) is null
     or DAY < (select built_first from built)
     or DAY > (select built_last from built))
{%- endset -%}
with

lines as (

    select * from {{ ref('fct_order_lines') }}

),

bounds as (

    select min(order_date) as first_date, max(order_date) as last_date from lines

),

spine as (

    {{ shoplens.dates_between('bounds', 'first_date', 'last_date') }}

),

{% if is_incremental() -%}
built as (

    select min({{ adapter.quote('date') }}) as built_first, max({{ adapter.quote('date') }}) as built_last
    from {{ this }}

),

{% endif -%}

daily as (

    select
        order_date,
        count(distinct case when is_cancelled then null else order_id end) as orders,
        count(distinct case when is_cancelled then null else customer_id end) as customers,
        cast(sum(demand_units) as {{ dbt.type_bigint() }}) as units,
        sum(case when is_cancelled then 0 else line_amount end) as gross_revenue,
        sum(case when is_returned then line_amount else 0 end) as returned_amount,
        sum(net_revenue) as net_revenue,
        cast(sum(case when is_cancelled then 1 else 0 end) as {{ dbt.type_bigint() }}) as cancelled_lines
    from lines
    {% if is_incremental() -%}
    where {{ rebuilt_day | replace('DAY', 'order_date') }}
    {%- endif %}
    group by order_date

),

final as (

    select
        spine.date_day as {{ adapter.quote('date') }},
        coalesce(daily.orders, 0) as orders,
        coalesce(daily.customers, 0) as customers,
        coalesce(daily.units, 0) as units,
        coalesce(daily.gross_revenue, 0) as gross_revenue,
        coalesce(daily.returned_amount, 0) as returned_amount,
        coalesce(daily.net_revenue, 0) as revenue,
        coalesce(daily.cancelled_lines, 0) as cancelled_lines,
        round({{ shoplens.safe_divide('daily.net_revenue', 'daily.orders') }}, 2) as average_order_value
    from spine
    left join daily on spine.date_day = daily.order_date
    {% if is_incremental() -%}
    where {{ rebuilt_day | replace('DAY', 'spine.date_day') }}
    {%- endif %}

)

select * from final
