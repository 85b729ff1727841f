{# The SKU-month inventory KPIs rolled up to category and month (ratios of sums, not means of ratios). #}
with

sku_months as (

    select * from {{ ref('inventory_turnover') }}

),

rolled as (

    select
        category,
        month_start,
        count(*) as skus,
        max(days_in_period) as days_in_period,
        cast(sum(units_sold) as {{ dbt.type_bigint() }}) as units_sold,
        sum(revenue) as revenue,
        sum(cogs) as cogs,
        sum(avg_inventory_value) as avg_inventory_value,
        cast(sum(ending_on_hand) as {{ dbt.type_bigint() }}) as ending_on_hand,
        sum(mean_daily_demand_28d) as mean_daily_demand_28d,
        cast(sum(inventory_days) as {{ dbt.type_bigint() }}) as inventory_days,
        cast(sum(stockout_days) as {{ dbt.type_bigint() }}) as stockout_days,
        cast(sum(case when abc_class = 'A' then 1 else 0 end) as {{ dbt.type_bigint() }}) as a_class_skus
    from sku_months
    group by category, month_start

),

final as (

    select
        category,
        month_start,
        skus,
        a_class_skus,
        days_in_period,
        units_sold,
        revenue,
        cogs,
        round(avg_inventory_value, 4) as avg_inventory_value,
        ending_on_hand,
        round({{ shoplens.safe_divide('cogs', 'avg_inventory_value') }}, 4) as turnover,
        round({{ shoplens.safe_divide('days_in_period * avg_inventory_value', 'cogs') }}, 4) as days_inventory_outstanding,
        round({{ shoplens.safe_divide('ending_on_hand', 'mean_daily_demand_28d') }}, 4) as days_of_supply,
        round({{ shoplens.safe_divide('stockout_days', 'inventory_days') }}, 4) as stockout_rate,
        round({{ shoplens.safe_divide('units_sold', 'units_sold + ending_on_hand') }}, 4) as sell_through
    from rolled

)

select
    final.*,
    stockout_rate is not null and stockout_rate < {{ var('stockout_rate_target') }} as meets_stockout_target
from final
