with

source as (

    select * from {{ source('raw', 'competitor_prices') }}

),

renamed as (

    select
        ---------- ids
        cast(sku as {{ dbt.type_string() }}) as sku,
        cast(competitor as {{ dbt.type_string() }}) as competitor,

        ---------- dates
        cast({{ adapter.quote("date") }} as date) as price_date,

        ---------- numerics
        cast(price as decimal(12, 2)) as competitor_price,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row,
        _partition_date as partition_date

    from source

)

select * from renamed
