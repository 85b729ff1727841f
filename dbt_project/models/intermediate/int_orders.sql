{#
  One row per order, rolled up from the line fact (the single place where revenue is defined).

  A table, not a view: int_shipments, int_review_scores, dim_customers, the customer marts and
  carbon_per_order all read it, and as a view each of them ran its window over every order line again
  (docs/benchmarks.md, "large").
#}
{{ config(materialized='table') }}
with

lines as (

    select * from {{ ref('fct_order_lines') }}

),

orders as (

    select
        order_id,
        max(customer_id) as customer_id,
        min(order_ts) as order_ts,
        min(order_date) as order_date,
        max(channel) as channel,
        max(region) as region,
        max(currency) as currency,
        count(*) as lines,
        cast(sum(case when is_cancelled then 1 else 0 end) as {{ dbt.type_bigint() }}) as cancelled_lines,
        cast(sum(case when is_returned then 1 else 0 end) as {{ dbt.type_bigint() }}) as returned_lines,
        cast(sum(demand_units) as {{ dbt.type_bigint() }}) as units,
        sum(case when is_cancelled then 0 else line_amount end) as gross_revenue,
        sum(net_revenue) as net_revenue,
        -- the category of the order's most valuable line (ties: the lowest line_no; unknown amounts last)
        {{ shoplens.arg_max_by('category', ['line_amount is not null', 'coalesce(line_amount, 0)', '-line_no']) }}
            as main_category
    from lines
    group by order_id

)

select
    orders.*,
    cancelled_lines < lines as is_purchase
from orders
