{#
  How each shipment's emissions and revenue split over product categories: by the shipped mass of the
  order's non-cancelled lines of each category (mass drives tonne-km), by units when the mass is unknown
  or zero, and wholly to 'unknown' when the order has no such lines. An order's revenue is spread
  evenly over its shipments so two parcels of one order do not count its revenue twice.

  A table (like int_orders, int_shipments and int_review_scores): three data tests and three carbon marts read it, and as
  a view each of them computed it again (at the large benchmark size those six took ~480 s of a nightly
  dbt build; docs/benchmarks.md, "large").
#}
{{ config(materialized='table') }}
with

shipments as (

    select shipment_id, order_id from {{ ref('stg_raw__shipments') }}

),

order_categories as (

    select
        order_id,
        category,
        cast(sum(demand_units) as {{ dbt.type_bigint() }}) as units,
        sum(demand_units * coalesce(unit_weight_kg, 0)) as mass_kg,
        sum(net_revenue) as net_revenue
    from {{ ref('fct_order_lines') }}
    where not is_cancelled
    group by order_id, category

),

order_totals as (

    select order_id, cast(sum(units) as {{ dbt.type_bigint() }}) as units, sum(mass_kg) as mass_kg
    from order_categories
    group by order_id

),

shipments_per_order as (

    select order_id, count(*) as shipments from shipments group by order_id

),

final as (

    select
        shipments.shipment_id,
        shipments.order_id,
        coalesce(order_categories.category, 'unknown') as category,
        case
            when order_categories.category is null then 1.0
            when order_totals.mass_kg > 0
                then {{ shoplens.safe_divide('order_categories.mass_kg', 'order_totals.mass_kg') }}
            else {{ shoplens.safe_divide('order_categories.units', 'order_totals.units') }}
        end as allocation_share,
        coalesce(order_categories.net_revenue, 0) / shipments_per_order.shipments as allocated_net_revenue
    from shipments
    inner join shipments_per_order on shipments.order_id = shipments_per_order.order_id
    left join order_categories on shipments.order_id = order_categories.order_id
    left join order_totals on shipments.order_id = order_totals.order_id

)

select * from final
