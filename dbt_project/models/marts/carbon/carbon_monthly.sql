{#
  kg CO2e per month (of shipping), product category, carrier and line-haul mode. A shipment's emissions
  and its order's revenue are split over categories by int_shipment_category_split (by shipped mass).

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"), by whole months (a month's distinct orders
  do not add up from its days): a run rebuilds the months starting from 31 days before the window to its
  end (so the month the window starts in, whatever its day) and the months any shipment of a changed
  order left in (a new parcel changes the revenue share of the order's earlier parcels). unique_key
  month_start: the rows of every rebuilt month are replaced; the 31-day lookback deletes the window's
  months even when none of their shipments is left.
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='month_start',
        window_lookback_days=31,
        unique_key='month_start',
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('int_orders') }}
with

{%- if is_incremental() %}
rebuilt_months as (

    select distinct shipped_month from {{ ref('carbon_per_shipment') }}
    where {{ shoplens.in_window('shipped_month', 31) }}
       or order_id in ({{ shoplens.changed_orders(ref('carbon_per_shipment'), shoplens.in_window('shipped_date'), ref('int_orders')) }})

),
{%- endif %}

shipments as (

    select * from {{ ref('carbon_per_shipment') }}
    {%- if is_incremental() %}
    where shipped_month in (select shipped_month from rebuilt_months)
    {%- endif %}

),

split as (

    select * from {{ ref('int_shipment_category_split') }}
    {%- if is_incremental() %}
    where shipment_id in (select shipment_id from shipments)
    {%- endif %}

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
