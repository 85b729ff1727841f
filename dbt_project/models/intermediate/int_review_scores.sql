{#
  One row per review or survey answer, classified (score_kind, bucket) and placed on the dimensions
  the NPS marts split by: month, category, region, carrier, delivery outcome of the order.

  A view over the incremental table int_review_facts, which holds everything but the region of a review
  whose order is unknown: that comes from the customers snapshot, which changes every day, so it is
  joined here (a hash join of the reviews with the customers) and not stored.
#}
{{ config(materialized='view') }}
with

facts as (

    select * from {{ ref('int_review_facts') }}

),

customers as (

    select customer_id, region from {{ ref('stg_raw__customers') }}

)

select
    facts.review_id,
    facts.order_id,
    facts.customer_id,
    facts.sku,
    facts.score,
    facts.scale,
    facts.score_kind,
    facts.bucket,
    facts.created_ts,
    facts.created_date,
    facts.review_month,
    facts.category,
    coalesce(facts.order_region, customers.region, 'unknown') as region,
    facts.carrier,
    facts.delivery_status
from facts
left join customers on facts.customer_id = customers.customer_id
