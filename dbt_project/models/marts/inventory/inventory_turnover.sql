{#
  Inventory KPIs per SKU and calendar month, from the zero-filled daily demand and end-of-day stock.
  Undefined ratios (a zero or unknown denominator) are null, never a division error: see the YAML.
#}
with

daily as (

    select * from {{ ref('fct_sku_daily_demand') }}

),

products as (

    select sku, unit_cost from {{ ref('stg_raw__products') }}

),

with_windows as (

    select
        daily.sku,
        daily.category,
        {{ shoplens.month_start('daily.' ~ adapter.quote('date')) }} as month_start,
        daily.units,
        daily.revenue,
        daily.on_hand_eod,
        daily.is_stockout,
        -- the spine is dense (one row per SKU and day), so N rows = N days
        avg(cast(daily.units as {{ shoplens.type_double() }})) over (
            partition by daily.sku
            order by daily.{{ adapter.quote('date') }}
            rows between {{ var('days_of_supply_window') - 1 }} preceding and current row
        ) as mean_daily_demand_window,
        row_number() over (
            partition by daily.sku, {{ shoplens.month_start('daily.' ~ adapter.quote('date')) }}
            order by daily.{{ adapter.quote('date') }} desc
        ) as days_to_month_end
    from daily

),

monthly as (

    select
        sku,
        max(category) as category,
        month_start,
        count(*) as days_in_period,
        cast(sum(units) as {{ dbt.type_bigint() }}) as units_sold,
        sum(revenue) as revenue,
        avg(cast(on_hand_eod as {{ shoplens.type_double() }})) as avg_on_hand,
        count(on_hand_eod) as inventory_days,
        cast(sum(case when is_stockout then 1 else 0 end) as {{ dbt.type_bigint() }}) as stockout_days,
        max(case when days_to_month_end = 1 then on_hand_eod end) as ending_on_hand,
        max(case when days_to_month_end = 1 then mean_daily_demand_window end) as mean_daily_demand_28d
    from with_windows
    group by sku, month_start

),

valued as (

    select
        monthly.*,
        products.unit_cost,
        monthly.units_sold * products.unit_cost as cogs,
        monthly.avg_on_hand * cast(products.unit_cost as {{ shoplens.type_double() }}) as avg_inventory_value
    from monthly
    left join products on monthly.sku = products.sku

),

abc as (

    select
        valued.*,
        sum(revenue) over (partition by month_start) as month_revenue,
        coalesce(sum(revenue) over (
            partition by month_start
            order by revenue desc, sku
            rows between unbounded preceding and 1 preceding
        ), 0) as revenue_before
    from valued

),

final as (

    select
        sku,
        category,
        month_start,
        days_in_period,
        units_sold,
        revenue,
        unit_cost,
        cogs,
        round(avg_on_hand, 4) as avg_on_hand,
        round(avg_inventory_value, 4) as avg_inventory_value,
        ending_on_hand,
        round({{ shoplens.safe_divide('cogs', 'avg_inventory_value') }}, 4) as turnover,
        round({{ shoplens.safe_divide('days_in_period * avg_inventory_value', 'cogs') }}, 4) as days_inventory_outstanding,
        round(mean_daily_demand_28d, 4) as mean_daily_demand_28d,
        round({{ shoplens.safe_divide('ending_on_hand', 'mean_daily_demand_28d') }}, 4) as days_of_supply,
        inventory_days,
        stockout_days,
        round({{ shoplens.safe_divide('stockout_days', 'inventory_days') }}, 4) as stockout_rate,
        round({{ shoplens.safe_divide('units_sold', 'units_sold + ending_on_hand') }}, 4) as sell_through,
        case
            when month_revenue is null or month_revenue <= 0 or revenue <= 0 then 'C'
            when revenue_before < 0.80 * month_revenue then 'A'
            when revenue_before < 0.95 * month_revenue then 'B'
            else 'C'
        end as abc_class
    from abc

)

select
    final.*,
    stockout_rate is not null and stockout_rate < {{ var('stockout_rate_target') }} as meets_stockout_target
from final
