{#
  kg CO2e per month (of shipping), product category, carrier and line-haul mode. A shipment's emissions
  and its order's revenue are split over categories by int_shipment_category_split (by shipped mass).
#}
with

shipments as (

    select * from {{ ref('carbon_per_shipment') }}

),

split as (

    select * from {{ ref('int_shipment_category_split') }}

),

allocated as (

    select
        shipments.shipped_month,
        split.category,
        shipments.carrier,
        shipments.transport_mode,
        shipments.order_id,
        shipments.shipment_id,
        shipments.total_kg_co2e * split.allocation_share as kg_co2e,
        shipments.transport_kg_co2e * split.allocation_share as transport_kg_co2e,
        shipments.last_mile_kg_co2e * split.allocation_share as last_mile_kg_co2e,
        split.allocated_net_revenue
    from shipments
    inner join split on shipments.shipment_id = split.shipment_id

),

monthly as (

    select
        shipped_month as month_start,
        category,
        carrier,
        transport_mode,
        count(distinct order_id) as orders,
        count(distinct shipment_id) as shipments,
        sum(kg_co2e) as kg_co2e,
        sum(transport_kg_co2e) as transport_kg_co2e,
        sum(last_mile_kg_co2e) as last_mile_kg_co2e,
        sum(allocated_net_revenue) as net_revenue
    from allocated
    group by shipped_month, category, carrier, transport_mode

)

select
    month_start,
    category,
    carrier,
    transport_mode,
    orders,
    shipments,
    round(kg_co2e, 6) as kg_co2e,
    round(transport_kg_co2e, 6) as transport_kg_co2e,
    round(last_mile_kg_co2e, 6) as last_mile_kg_co2e,
    round(net_revenue, 2) as net_revenue,
    round({{ shoplens.safe_divide('kg_co2e', 'orders') }}, 6) as kg_co2e_per_order,
    case when net_revenue > 0 then round({{ shoplens.safe_divide('kg_co2e', 'net_revenue') }}, 8) end as kg_co2e_per_revenue
from monthly
