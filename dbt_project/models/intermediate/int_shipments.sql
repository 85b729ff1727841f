{#
  One row per shipment with its order's customer, delivery outcome and delay.
  A table, not a view: five marts, int_review_scores and its own tests read it (docs/benchmarks.md, "large").

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run rebuilds the shipments shipped in the
  window and every shipment of an order placed in the window (its customer comes from the order's lines,
  which lie on the order's day; the parcels ship on that day or later).
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

shipments as (

    select * from {{ ref('stg_raw__shipments') }}
    {%- if is_incremental() %}
    where {{ shoplens.raw_shipped_in_window() }}
       or order_id in (
           {{ shoplens.changed_orders(ref('stg_raw__shipments'), shoplens.raw_shipped_in_window(), ref('int_orders')) }}
       )
    {%- endif %}

),

orders as (

    select order_id, customer_id from {{ ref('int_orders') }}

),

enriched as (

    select
        shipments.shipment_id,
        shipments.order_id,
        orders.customer_id,
        shipments.carrier,
        shipments.transport_mode,
        shipments.origin,
        shipments.destination_region as region,
        shipments.packaging,
        shipments.packaging_kg,
        shipments.distance_km,
        shipments.weight_kg,
        shipments.shipping_cost,
        shipments.shipped_ts,
        shipments.promised_ts,
        shipments.delivered_ts,
        cast(shipments.shipped_ts as date) as shipped_date,
        cast(shipments.promised_ts as date) as promised_date,
        cast(shipments.delivered_ts as date) as delivered_date,
        shipments.delivered_ts is not null as is_delivered,
        shipments.delivered_ts is not null and shipments.delivered_ts > shipments.promised_ts as is_late,
        case
            when shipments.delivered_ts is null then 'in_transit'
            when shipments.delivered_ts > shipments.promised_ts then 'late'
            else 'on_time'
        end as delivery_status,
        case
            when shipments.delivered_ts is null then null
            when shipments.delivered_ts > shipments.promised_ts
                then {{ shoplens.fractional_days_between('shipments.promised_ts', 'shipments.delivered_ts') }}
            else 0.0
        end as delay_days,
        case
            when shipments.delivered_ts is not null
                then {{ shoplens.fractional_days_between('shipments.shipped_ts', 'shipments.delivered_ts') }}
        end as delivery_days
    from shipments
    left join orders on shipments.order_id = orders.order_id

)

select * from enriched
