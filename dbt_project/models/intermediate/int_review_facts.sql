{#
  int_review_scores without the customer's region: one row per review or survey answer, classified
  (score_kind, bucket) and placed on the order's dimensions (month, category, the order's region,
  carrier, delivery outcome). int_review_scores adds the customer's region where the order has none.

  A table, not a view: the three NPS marts (one of them a union of three aggregates over it) and five data
  tests read it, and as a view each of them joined the reviews to orders and shipments again.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run rebuilds the reviews written in the
  window and every review of an order placed or shipped in the window (a later parcel changes the order's
  delivery outcome). The customers snapshot, which changes every day, stays out of this table (it is
  joined in the int_review_scores view), so it never forces a full rebuild.
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='created_date',
        unique_key='review_id',
        on_schema_change='fail',
    )
}}
with

reviews as (

    select * from {{ ref('stg_raw__reviews') }}
    {%- if is_incremental() %}
    where ({{ shoplens.in_window('partition_date') }} and {{ shoplens.in_window('cast(created_ts as date)') }})
       or order_id in ({{ shoplens.changed_orders(ref('int_shipments'), shoplens.in_window('shipped_date'), ref('int_orders')) }})
    {%- endif %}

),

orders as (

    select order_id, region, main_category from {{ ref('int_orders') }}

),

products as (

    select sku, category from {{ ref('stg_raw__products') }}

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
    {%- if is_incremental() %}
    where order_id in (select order_id from reviews)
    {%- endif %}
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
        orders.region as order_region,
        coalesce(order_delivery.carrier, 'unknown') as carrier,
        order_delivery.delivery_status
    from reviews
    left join orders on reviews.order_id = orders.order_id
    left join products on reviews.sku = products.sku
    left join order_delivery on reviews.order_id = order_delivery.order_id

)

select * from classified
