{#
  How each shipment's emissions and revenue split over product categories: by the shipped mass of the
  order's non-cancelled lines of each category (mass drives tonne-km), by units when the mass is unknown
  or zero, and wholly to 'unknown' when the order has no such lines. An order's revenue is spread
  evenly over its shipments so two parcels of one order do not count its revenue twice.

  A table (like int_orders, int_shipments and int_review_scores): three data tests and three carbon marts
  read it, and as a view each of them computed it again (docs/benchmarks.md, "large").

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run rebuilds every shipment of the orders
  with a shipment shipped in the window (a new parcel changes its order's older parcels' revenue share)
  or placed in the window (changed lines change every parcel's split, shipped on any later day). The
  date_window strategy drops the window's old rows and every old row of a rebuilt shipment (unique_key
  shipment_id: a shipment has one row per category, and a category may be gone).
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='shipped_date',
        unique_key='shipment_id',
        on_schema_change='fail',
    )
}}
with

{%- if is_incremental() %}
rebuilt_orders as (

    {{ shoplens.changed_orders(ref('stg_raw__shipments'), shoplens.raw_shipped_in_window(), ref('fct_order_lines')) }}

),
{%- endif %}

shipments as (

    select shipment_id, order_id, cast(shipped_ts as date) as shipped_date
    from {{ ref('stg_raw__shipments') }}
    {%- if is_incremental() %}
    where order_id in (select order_id from rebuilt_orders)
    {%- endif %}

),

order_categories as (

    select
        order_id,
        category,
        cast(sum(demand_units) as {{ dbt.type_bigint() }}) as units,
        -- in decimal (weights to the milligram): a sum of doubles depends on the order it adds the rows in,
        -- so an incremental run and a full build could differ in the last bit of a share
        sum(demand_units * cast(coalesce(unit_weight_kg, 0) as decimal(18, 6))) as mass_kg,
        sum(net_revenue) as net_revenue
    from {{ ref('fct_order_lines') }}
    where not is_cancelled
    {%- if is_incremental() %}
      and order_id in (select order_id from rebuilt_orders)
    {%- endif %}
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
        shipments.shipped_date,
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
