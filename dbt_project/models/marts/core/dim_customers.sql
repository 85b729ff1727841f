with

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

orders as (

    select * from {{ ref('int_orders') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

purchases as (

    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as orders,
        sum(net_revenue) as net_revenue,
        max(region) as last_region
    from orders
    cross join as_of
    where is_purchase and customer_id is not null and order_date <= as_of.as_of_date
    group by customer_id

),

cancelled as (

    select customer_id, count(*) as cancelled_orders
    from orders
    cross join as_of
    where not is_purchase and customer_id is not null and order_date <= as_of.as_of_date
    group by customer_id

),

known_ids as (

    select customer_id from customers
    union
    -- buyers missing from the customer snapshot still get a row (relationships test warns about them)
    select customer_id from orders where customer_id is not null

),

final as (

    select
        known_ids.customer_id,
        coalesce(customers.region, purchases.last_region) as region,
        customers.first_seen_date,
        customers.customer_id is not null as in_customer_table,
        customers.email_hash is not null as has_email,
        purchases.first_order_date,
        purchases.last_order_date,
        coalesce(purchases.orders, 0) as orders,
        coalesce(cancelled.cancelled_orders, 0) as cancelled_orders,
        coalesce(purchases.net_revenue, 0) as net_revenue,
        {{ shoplens.days_between('purchases.last_order_date', 'as_of.as_of_date') }} as days_since_last_order,
        coalesce(purchases.orders, 0) >= 2 as is_repeat_customer,
        coalesce(
            {{ shoplens.days_between('purchases.last_order_date', 'as_of.as_of_date') }}
            <= {{ var('active_customer_days') }},
            false
        ) as is_active
    from known_ids
    cross join as_of
    left join customers on known_ids.customer_id = customers.customer_id
    left join purchases on known_ids.customer_id = purchases.customer_id
    left join cancelled on known_ids.customer_id = cancelled.customer_id

)

select * from final
