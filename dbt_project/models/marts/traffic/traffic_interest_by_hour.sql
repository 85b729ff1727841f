{# Product interest by hour of day (shop local time) and category: event counts and step rates. #}
with

events as (

    select * from {{ ref('stg_raw__traffic') }} where sku is not null

),

products as (

    select sku, category from {{ ref('stg_raw__products') }}

),

hourly as (

    select
        cast(extract(hour from events.event_ts) as integer) as hour_of_day,
        coalesce(products.category, 'unknown') as category,
        count(distinct events.session_id) as sessions,
        cast(sum(case when events.event_type = 'view' then 1 else 0 end) as {{ dbt.type_bigint() }}) as views,
        cast(sum(case when events.event_type = 'cart' then 1 else 0 end) as {{ dbt.type_bigint() }}) as carts,
        cast(sum(case when events.event_type = 'purchase' then 1 else 0 end) as {{ dbt.type_bigint() }}) as purchases
    from events
    left join products on events.sku = products.sku
    group by cast(extract(hour from events.event_ts) as integer), coalesce(products.category, 'unknown')

)

select
    hourly.*,
    round({{ shoplens.safe_divide('carts', 'views') }}, 4) as carts_per_view,
    round({{ shoplens.safe_divide('purchases', 'views') }}, 4) as purchases_per_view
from hourly
