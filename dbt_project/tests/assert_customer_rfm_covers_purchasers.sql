-- Every identified customer with a purchase on or before the as-of date has exactly one RFM row with a
-- segment, and nobody else has one.
with

purchasers as (

    select distinct orders.customer_id
    from {{ ref('int_orders') }} as orders
    cross join {{ ref('int_as_of_date') }} as as_of
    where orders.is_purchase
        and orders.customer_id is not null
        and orders.order_date <= as_of.as_of_date

),

scored as (

    select customer_id, count(*) as rows_per_customer, count(segment) as segments
    from {{ ref('customer_rfm') }}
    group by customer_id

)

select
    coalesce(purchasers.customer_id, scored.customer_id) as customer_id,
    scored.rows_per_customer,
    scored.segments
from purchasers
full outer join scored on purchasers.customer_id = scored.customer_id
where purchasers.customer_id is null
    or scored.customer_id is null
    or scored.rows_per_customer <> 1
    or scored.segments <> 1
