with

source as (

    select * from {{ source('raw', 'shipments') }}

),

renamed as (

    select
        ---------- ids
        cast(shipment_id as {{ dbt.type_string() }}) as shipment_id,
        cast(order_id as {{ dbt.type_string() }}) as order_id,

        ---------- properties
        cast(carrier as {{ dbt.type_string() }}) as carrier,
        cast(mode as {{ dbt.type_string() }}) as transport_mode,
        cast(origin as {{ dbt.type_string() }}) as origin,
        cast(destination_region as {{ dbt.type_string() }}) as destination_region,
        cast(packaging as {{ dbt.type_string() }}) as packaging,

        ---------- numerics
        cast(distance_km as {{ shoplens.type_double() }}) as distance_km,
        cast(weight_kg as {{ shoplens.type_double() }}) as weight_kg,
        cast(packaging_kg as {{ shoplens.type_double() }}) as packaging_kg,
        cast(cost as decimal(12, 2)) as shipping_cost,

        ---------- timestamps (shop local time)
        cast(shipped_ts as {{ dbt.type_timestamp() }}) as shipped_ts,
        cast(promised_ts as {{ dbt.type_timestamp() }}) as promised_ts,
        cast(delivered_ts as {{ dbt.type_timestamp() }}) as delivered_ts,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row,
        _partition_date as partition_date

    from source

)

select * from renamed
