{#
  The demand history the forecasting code reads: every SKU on every day from the first to the last
  order date, zero-filled. Units count completed and returned lines (the customer wanted them),
  not cancelled ones. Stock comes from the inventory feed: null when the feed has no row that day.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"). A row (sku, day) depends on that day's
  lines and stock, plus two things that are global: the date range (first to last order date) and the
  SKU list (products + SKUs sold but unknown). So a run rebuilds every SKU on the window's days, every
  SKU on days the table does not hold yet (the range grew: zero-sale days between the last build and the
  window), and every day of a SKU the table does not hold yet (a new unknown SKU's zero-filled history);
  the post-hook drops days that fell out of the range. Product changes rebuild in full (Dagster asset).
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='date',
        unique_key=['sku', 'date'],
        on_schema_change='fail',
        post_hook="{{ shoplens.trim_to_order_dates() }}",
    )
}}
{#- Incremental runs: a day is rebuilt when it is in the window or outside the days the table holds. -#}
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

products as (

    select sku, category, list_price from {{ ref('stg_raw__products') }}

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

skus as (

    select sku, category, list_price from products
    union all
    -- SKUs sold but missing from the product table still have demand
    select distinct lines.sku, 'unknown' as category, cast(null as decimal(12, 2)) as list_price
    from lines
    left join products on lines.sku = products.sku
    where products.sku is null

),

{% if is_incremental() -%}
new_skus as (

    select sku from skus
    where sku not in (select distinct sku from {{ this }})

),

targets as (

    select skus.sku, skus.category, skus.list_price, spine.date_day
    from skus
    cross join spine
    where {{ rebuilt_day | replace('DAY', 'spine.date_day') }}
       or skus.sku in (select sku from new_skus)

),

{% else -%}
targets as (

    select skus.sku, skus.category, skus.list_price, spine.date_day
    from skus
    cross join spine

),

{% endif -%}
stock as (

    select * from {{ ref('int_sku_daily_stock') }}
    {% if is_incremental() -%}
    where {{ rebuilt_day | replace('DAY', 'stock_date') }}
       or sku in (select sku from new_skus)
    {%- endif %}

),

daily as (

    select
        sku,
        order_date,
        cast(sum(demand_units) as {{ dbt.type_bigint() }}) as units,
        cast(sum(case when is_returned then quantity else 0 end) as {{ dbt.type_bigint() }}) as units_returned,
        sum(case when is_cancelled then 0 else line_amount end) as revenue,
        sum(case when is_cancelled then 0 else gross_amount end) as gross_amount,
        sum(case when is_cancelled then 0 else discount end) as discount,
        count(distinct case when is_cancelled then null else order_id end) as orders
    from lines
    {% if is_incremental() -%}
    where {{ rebuilt_day | replace('DAY', 'order_date') }}
       or sku in (select sku from new_skus)
    {%- endif %}
    group by sku, order_date

),

final as (

    select
        targets.sku,
        targets.category,
        targets.date_day as {{ adapter.quote('date') }},
        coalesce(daily.units, 0) as units,
        coalesce(daily.units_returned, 0) as units_returned,
        coalesce(daily.orders, 0) as orders,
        coalesce(daily.revenue, 0) as revenue,
        round(coalesce(
            {{ shoplens.safe_divide('daily.gross_amount', 'daily.units') }},
            cast(targets.list_price as {{ shoplens.type_double() }})
        ), 4) as avg_unit_price,
        round(coalesce({{ shoplens.safe_divide('daily.discount', 'daily.gross_amount') }}, 0.0), 4) as discount_rate,
        stock.on_hand as on_hand_eod,
        stock.on_hand is not null as has_inventory,
        coalesce(stock.on_hand <= 0, false) as is_stockout
    from targets
    left join daily on targets.sku = daily.sku and targets.date_day = daily.order_date
    left join stock on targets.sku = stock.sku and targets.date_day = stock.stock_date

)

select * from final
