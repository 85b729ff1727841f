with

source as (

    select * from {{ source('raw', 'customers') }}

),

renamed as (

    select
        ---------- ids
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,

        ---------- properties
        cast(region as {{ dbt.type_string() }}) as region,

        ---------- personal data, hashed at ingestion (never raw)
        cast(email_hash as {{ dbt.type_string() }}) as email_hash,
        cast(phone_hash as {{ dbt.type_string() }}) as phone_hash,
        cast(name_hash as {{ dbt.type_string() }}) as name_hash,

        ---------- dates
        cast(first_seen as date) as first_seen_date,

        ---------- lineage
        _source_file as source_file,
        _source_row as source_row

    from source

)

select * from renamed
