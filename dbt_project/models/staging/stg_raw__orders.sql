with

source as (

    select * from {{ source('raw', 'orders') }}

),

renamed as (

    select
        ---------- ids
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(line_no as integer) as line_no,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(sku as {{ dbt.type_string() }}) as sku,

        ---------- numerics
        cast(quantity as integer) as quantity,
        cast(unit_price as decimal(12, 2)) as unit_price,
        cast(discount as decimal(12, 2)) as discount,
        cast(currency as {{ dbt.type_string() }}) as currency,

        ---------- properties
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(region as {{ dbt.type_string() }}) as region,
        cast(status as {{ dbt.type_string() }}) as status,

        ---------- timestamps (shop local time)
        cast(order_ts as {{ dbt.type_timestamp() }}) as order_ts,
        cast(order_ts as date) as order_date,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row,
        _partition_date as partition_date

    from source

)

select * from renamed
