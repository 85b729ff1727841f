{#
  kg CO2e per shipment, after ISO 14083 / GLEC: activity x emission factor (seed emission_factors).
    transport  = weight_kg / 1000 x distance_km x factor(line-haul mode)           [t x km x kg/tkm]
    packaging  = packaging_kg x factor(packaging material)                          [kg x kg/kg]
    handling   = warehouse handling factor (per shipment, a documented assumption)
    last_mile  = weight_kg / 1000 x last_mile_km_per_delivery x factor(diesel van)  [t x km x kg/tkm]
  Unknown packaging or packaging mass counts 0 (flagged), an unknown mode fails the not_null test.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run rebuilds the rows int_shipments
  rebuilt, the shipments shipped in the window and those of orders placed in it. A change of the
  emission factors (a seed) changes the code fingerprint, so the next build is a full one.
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
-- depends_on: {{ ref('int_orders') }}
with

shipments as (

    select * from {{ ref('int_shipments') }}
    {%- if is_incremental() %}
    where {{ shoplens.in_window('shipped_date') }}
       or order_id in ({{ shoplens.changed_orders(ref('int_shipments'), shoplens.in_window('shipped_date'), ref('int_orders')) }})
    {%- endif %}

),

factors as (

    select * from {{ ref('emission_factors') }}

),

scalars as (

    select
        max(case when factor_key = 'warehouse_handling' then value end) as handling_per_shipment,
        max(case when factor_key = 'last_mile_van' then value end) as van_per_tkm,
        max(case when factor_key = 'last_mile_km_per_delivery' then value end) as last_mile_km,
        max(version) as factor_version
    from factors

),

transport_factors as (

    select applies_to as transport_mode, value as per_tkm from factors where activity = 'transport'

),

packaging_factors as (

    select applies_to as packaging, value as per_kg from factors where activity = 'packaging'

),

computed as (

    select
        shipments.shipment_id,
        shipments.order_id,
        shipments.customer_id,
        shipments.carrier,
        shipments.transport_mode,
        shipments.region,
        shipments.shipped_date,
        {{ shoplens.month_start('shipments.shipped_date') }} as shipped_month,
        shipments.weight_kg,
        shipments.distance_km,
        shipments.packaging,
        shipments.packaging_kg,
        shipments.weight_kg / 1000.0 * shipments.distance_km * transport_factors.per_tkm as transport_kg_co2e,
        coalesce(shipments.packaging_kg * packaging_factors.per_kg, 0.0) as packaging_kg_co2e,
        scalars.handling_per_shipment as handling_kg_co2e,
        shipments.weight_kg / 1000.0 * scalars.last_mile_km * scalars.van_per_tkm as last_mile_kg_co2e,
        packaging_factors.per_kg is null or shipments.packaging_kg is null as is_packaging_unknown,
        scalars.factor_version
    from shipments
    cross join scalars
    left join transport_factors on shipments.transport_mode = transport_factors.transport_mode
    left join packaging_factors on shipments.packaging = packaging_factors.packaging

)

select
    shipment_id,
    order_id,
    customer_id,
    carrier,
    transport_mode,
    region,
    shipped_date,
    shipped_month,
    weight_kg,
    distance_km,
    packaging,
    packaging_kg,
    round(transport_kg_co2e, 6) as transport_kg_co2e,
    round(packaging_kg_co2e, 6) as packaging_kg_co2e,
    round(handling_kg_co2e, 6) as handling_kg_co2e,
    round(last_mile_kg_co2e, 6) as last_mile_kg_co2e,
    round(transport_kg_co2e + packaging_kg_co2e + handling_kg_co2e + last_mile_kg_co2e, 6) as total_kg_co2e,
    is_packaging_unknown,
    factor_version
from computed
