{#
  One row per order, rolled up from the line fact (the single place where revenue is defined).

  A table, not a view: int_shipments, int_review_scores, dim_customers, the customer marts and
  carbon_per_order all read it, and as a view each of them ran its window over every order line again
  (docs/benchmarks.md, "large").

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run rebuilds the orders with a line in the
  window, from all of their lines; the date_window strategy then drops the window's old rows (an order
  whose lines were withdrawn disappears) and the older rows of the rebuilt orders (unique_key), so an
  order's row is the same as a full build's whatever days its lines fall on.
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='order_date',
        unique_key='order_id',
        on_schema_change='fail',
    )
}}
with

lines as (

    select * from {{ ref('fct_order_lines') }}
    {%- if is_incremental() %}
    where order_id in (
        select order_id from {{ ref('fct_order_lines') }} where {{ shoplens.in_window('order_date') }}
    )
    {%- endif %}

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
