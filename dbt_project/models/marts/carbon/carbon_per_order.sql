{#
  kg CO2e per order: its shipments summed, with the order's net revenue for intensity.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run rebuilds the orders with a shipment
  shipped in the window (a new parcel of an older order changes that order's row) and the orders placed
  in the window. One case it does not catch: an order placed before the window whose every shipment was
  withdrawn by a correction keeps its old row until the next full build.
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='order_date',
        unique_key='order_id',
        on_schema_change='fail',
    )
}}
with

shipments as (

    select * from {{ ref('carbon_per_shipment') }}
    {%- if is_incremental() %}
    where order_id in ({{ shoplens.changed_orders(ref('carbon_per_shipment'), shoplens.in_window('shipped_date'), ref('int_orders')) }})
    {%- endif %}

),

orders as (

    select order_id, customer_id, order_date, units, net_revenue from {{ ref('int_orders') }}

),

per_order as (

    select
        order_id,
        count(*) as shipments,
        sum(weight_kg) as weight_kg,
        sum(transport_kg_co2e) as transport_kg_co2e,
        sum(packaging_kg_co2e) as packaging_kg_co2e,
        sum(handling_kg_co2e) as handling_kg_co2e,
        sum(last_mile_kg_co2e) as last_mile_kg_co2e,
        sum(total_kg_co2e) as total_kg_co2e
    from shipments
    group by order_id

)

select
    per_order.order_id,
    orders.customer_id,
    orders.order_date,
    per_order.shipments,
    round(per_order.weight_kg, 6) as weight_kg,
    round(per_order.transport_kg_co2e, 6) as transport_kg_co2e,
    round(per_order.packaging_kg_co2e, 6) as packaging_kg_co2e,
    round(per_order.handling_kg_co2e, 6) as handling_kg_co2e,
    round(per_order.last_mile_kg_co2e, 6) as last_mile_kg_co2e,
    round(per_order.total_kg_co2e, 6) as total_kg_co2e,
    orders.units,
    orders.net_revenue,
    case
        when orders.net_revenue > 0
            then round({{ shoplens.safe_divide('per_order.total_kg_co2e', 'orders.net_revenue') }}, 8)
    end as kg_co2e_per_revenue
from per_order
left join orders on per_order.order_id = orders.order_id
