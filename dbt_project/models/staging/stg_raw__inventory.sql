with

source as (

    select * from {{ source('raw', 'inventory') }}

),

renamed as (

    select
        ---------- ids
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(warehouse as {{ dbt.type_string() }}) as warehouse,

        ---------- dates
        cast({{ adapter.quote("date") }} as date) as stock_date,

        ---------- numerics (end-of-day units)
        cast(on_hand as integer) as on_hand,
        cast(on_order as integer) as on_order,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row,
        _partition_date as partition_date

    from source

)

select * from renamed
