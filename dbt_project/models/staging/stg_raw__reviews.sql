with

source as (

    select * from {{ source('raw', 'reviews') }}

),

renamed as (

    select
        ---------- ids
        cast(review_id as {{ dbt.type_string() }}) as review_id,
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(sku as {{ dbt.type_string() }}) as sku,

        ---------- answers
        cast(score as integer) as score,
        cast(scale as {{ dbt.type_string() }}) as scale,
        cast({{ adapter.quote("text") }} as {{ dbt.type_string() }}) as review_text,

        ---------- timestamps (shop local time)
        cast(created_ts as {{ dbt.type_timestamp() }}) as created_ts,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row,
        _partition_date as partition_date

    from source

)

select * from renamed
