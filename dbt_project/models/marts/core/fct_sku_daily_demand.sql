{#
  The demand history the forecasting code reads: every SKU on every day from the first to the last
  order date, zero-filled. Units count completed and returned lines (the customer wanted them),
  not cancelled ones. Stock comes from the inventory feed: null when the feed has no row that day.
#}
with

lines as (

    select * from {{ ref('fct_order_lines') }}

),

products as (

    select sku, category, list_price from {{ ref('stg_raw__products') }}

),

stock as (

    select * from {{ ref('int_sku_daily_stock') }}

),

bounds as (

    select min(order_date) as first_date, max(order_date) as last_date from lines

),

spine as (

    {{ shoplens.dates_between('bounds', 'first_date', 'last_date') }}

),

skus as (

    select sku, category, list_price from products
    union all
    -- SKUs sold but missing from the product table still have demand
    select distinct lines.sku, 'unknown' as category, cast(null as decimal(12, 2)) as list_price
    from lines
    left join products on lines.sku = products.sku
    where products.sku is null

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
    group by sku, order_date

),

final as (

    select
        skus.sku,
        skus.category,
        spine.date_day as {{ adapter.quote('date') }},
        coalesce(daily.units, 0) as units,
        coalesce(daily.units_returned, 0) as units_returned,
        coalesce(daily.orders, 0) as orders,
        coalesce(daily.revenue, 0) as revenue,
        round(coalesce(
            {{ shoplens.safe_divide('daily.gross_amount', 'daily.units') }},
            cast(skus.list_price as {{ shoplens.type_double() }})
        ), 4) as avg_unit_price,
        round(coalesce({{ shoplens.safe_divide('daily.discount', 'daily.gross_amount') }}, 0.0), 4) as discount_rate,
        stock.on_hand as on_hand_eod,
        stock.on_hand is not null as has_inventory,
        coalesce(stock.on_hand <= 0, false) as is_stockout
    from skus
    cross join spine
    left join daily on skus.sku = daily.sku and spine.date_day = daily.order_date
    left join stock on skus.sku = stock.sku and spine.date_day = stock.stock_date

)

select * from final
