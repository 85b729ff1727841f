{# One row per RFM segment (all 11, also when empty): size, revenue share, average values, action. #}
with

rfm as (

    select * from {{ ref('customer_rfm') }}

),

segments as (

    select segment, priority, action from {{ ref('segment_actions') }}

),

totals as (

    select count(*) as all_customers, sum(monetary) as all_revenue from rfm

),

per_segment as (

    select
        segment,
        count(*) as customers,
        sum(monetary) as revenue,
        avg(monetary) as average_customer_value,
        avg(average_order_value) as average_order_value,
        avg(recency_days) as average_recency_days,
        avg(frequency) as average_frequency
    from rfm
    group by segment

),

final as (

    select
        segments.segment,
        segments.priority,
        segments.action,
        coalesce(per_segment.customers, 0) as customers,
        round(coalesce({{ shoplens.safe_divide('per_segment.customers', 'totals.all_customers') }}, 0.0), 4) as customer_share,
        coalesce(per_segment.revenue, 0) as revenue,
        round(coalesce({{ shoplens.safe_divide('per_segment.revenue', 'totals.all_revenue') }}, 0.0), 4) as revenue_share,
        round(per_segment.average_customer_value, 2) as average_customer_value,
        round(per_segment.average_order_value, 2) as average_order_value,
        round(per_segment.average_recency_days, 1) as average_recency_days,
        round(per_segment.average_frequency, 2) as average_frequency
    from segments
    cross join totals
    left join per_segment on segments.segment = per_segment.segment

)

select * from final
