{#
  Pareto view: share of net revenue from the top X% of scored customers (by monetary, ties at the cut
  broken by customer_id, which cannot change the sum because tied customers have equal values).
  The top X% is the first ceil(X / 100 x n) customers.
#}
{%- set cutoffs = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100] -%}
with

ranked as (

    select
        customer_id,
        monetary,
        row_number() over (order by monetary desc, customer_id) as value_rank,
        count(*) over () as customers,
        sum(monetary) over () as total_revenue
    from {{ ref('customer_rfm') }}

),

cutoffs as (

    {% for pct in cutoffs -%}
    select {{ pct }} as top_percent{% if not loop.last %} union all {% endif %}
    {% endfor %}

),

final as (

    select
        cutoffs.top_percent,
        max(ranked.customers) as customers,
        cast(ceiling(cutoffs.top_percent * max(ranked.customers) / 100.0) as integer) as top_customers,
        sum(case when ranked.value_rank <= ceiling(cutoffs.top_percent * ranked.customers / 100.0)
                 then ranked.monetary else 0 end) as top_revenue,
        max(ranked.total_revenue) as total_revenue
    from cutoffs
    cross join ranked
    group by cutoffs.top_percent

)

select
    final.*,
    round({{ shoplens.safe_divide('top_revenue', 'total_revenue') }}, 4) as revenue_share
from final
