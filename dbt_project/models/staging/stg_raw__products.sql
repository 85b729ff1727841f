with

source as (

    select * from {{ source('raw', 'products') }}

),

renamed as (

    select
        ---------- ids
        cast(sku as {{ dbt.type_string() }}) as sku,

        ---------- properties
        cast(name as {{ dbt.type_string() }}) as product_name,
        cast(category as {{ dbt.type_string() }}) as category,
        cast(supplier as {{ dbt.type_string() }}) as supplier,

        ---------- numerics
        cast(unit_cost as decimal(12, 2)) as unit_cost,
        cast(list_price as decimal(12, 2)) as list_price,
        cast(weight_kg as {{ shoplens.type_double() }}) as weight_kg,
        cast(lead_time_days as integer) as lead_time_days,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row

    from source

)

select * from renamed
