with

source as (

    select * from {{ source('raw', 'traffic') }}

),

renamed as (

    select
        ---------- ids
        cast(session_id as {{ dbt.type_string() }}) as session_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(order_id as {{ dbt.type_string() }}) as order_id,

        ---------- properties
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(device as {{ dbt.type_string() }}) as device,
        cast(event as {{ dbt.type_string() }}) as event_type,

        ---------- timestamps (shop local time)
        cast(event_ts as {{ dbt.type_timestamp() }}) as event_ts,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row,
        _partition_date as partition_date

    from source

)

select * from renamed
