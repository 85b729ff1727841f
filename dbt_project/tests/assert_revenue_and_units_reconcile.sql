-- Net revenue and demand units agree across the line fact, the order roll-up, the daily sales and the
-- SKU-day demand (the marts must not lose or double-count lines).
with

lines as (

    select sum(net_revenue) as net_revenue, sum(demand_units) as units from {{ ref('fct_order_lines') }}

),

orders as (

    select sum(net_revenue) as net_revenue, sum(units) as units from {{ ref('int_orders') }}

),

daily as (

    select sum(revenue) as net_revenue, sum(units) as units from {{ ref('fct_daily_sales') }}

),

sku_days as (

    select sum(units) as units from {{ ref('fct_sku_daily_demand') }}

)

select
    lines.net_revenue as lines_revenue,
    orders.net_revenue as orders_revenue,
    daily.net_revenue as daily_revenue,
    lines.units as lines_units,
    orders.units as orders_units,
    daily.units as daily_units,
    sku_days.units as sku_day_units
from lines
cross join orders
cross join daily
cross join sku_days
where lines.net_revenue <> orders.net_revenue
    or lines.net_revenue <> daily.net_revenue
    or lines.units <> orders.units
    or lines.units <> daily.units
    or lines.units <> sku_days.units
