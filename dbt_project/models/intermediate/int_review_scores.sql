{#
  One row per review or survey answer, classified (score_kind, bucket) and placed on the dimensions
  the NPS marts split by: month, category, region, carrier, delivery outcome of the order.

  A table, not a view: the three NPS marts (one of them a union of three aggregates over it) and five data
  tests read it, and as a view each of them joined the reviews to orders and shipments again.
#}
{{ config(materialized='table') }}
with

reviews as (

    select * from {{ ref('stg_raw__reviews') }}

),

orders as (

    select order_id, region, main_category from {{ ref('int_orders') }}

),

products as (

    select sku, category from {{ ref('stg_raw__products') }}

),

customers as (

    select customer_id, region from {{ ref('stg_raw__customers') }}

),

order_delivery as (

    -- one row per order: its carrier (first shipment) and delivery outcome (late if any shipment was late,
    -- on time if every shipment arrived on time, null while something is still in transit)
    select
        order_id,
        min(carrier) as carrier,
        case
            when sum(case when is_late then 1 else 0 end) > 0 then 'late'
            when sum(case when is_delivered then 0 else 1 end) = 0 then 'on_time'
        end as delivery_status
    from {{ ref('int_shipments') }}
    group by order_id

),

classified as (

    select
        reviews.review_id,
        reviews.order_id,
        reviews.customer_id,
        reviews.sku,
        reviews.score,
        reviews.scale,
        {{ shoplens.nps_score_kind('reviews.scale') }} as score_kind,
        {{ shoplens.nps_bucket('reviews.score', 'reviews.scale') }} as bucket,
        reviews.created_ts,
        cast(reviews.created_ts as date) as created_date,
        {{ shoplens.month_start('reviews.created_ts') }} as review_month,
        coalesce(products.category, orders.main_category, 'unknown') as category,
        coalesce(orders.region, customers.region, 'unknown') as region,
        coalesce(order_delivery.carrier, 'unknown') as carrier,
        order_delivery.delivery_status
    from reviews
    left join orders on reviews.order_id = orders.order_id
    left join products on reviews.sku = products.sku
    left join customers on reviews.customer_id = customers.customer_id
    left join order_delivery on reviews.order_id = order_delivery.order_id

)

select * from classified
