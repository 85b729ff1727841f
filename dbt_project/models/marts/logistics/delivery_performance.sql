{# Delivery KPIs per carrier, destination region and ISO week (Monday) of shipping. #}
with

shipments as (

    select * from {{ ref('int_shipments') }}

)

select
    carrier,
    region,
    {{ shoplens.week_start('shipped_date') }} as week_start,
    count(*) as shipments,
    cast(sum(case when is_delivered then 1 else 0 end) as {{ dbt.type_bigint() }}) as delivered,
    cast(sum(case when is_delivered then 0 else 1 end) as {{ dbt.type_bigint() }}) as in_transit,
    cast(sum(case when is_late then 1 else 0 end) as {{ dbt.type_bigint() }}) as late,
    round({{ shoplens.safe_divide("sum(case when delivery_status = 'on_time' then 1 else 0 end)", "sum(case when is_delivered then 1 else 0 end)") }}, 4) as on_time_rate,
    round(avg(delay_days), 4) as mean_delay_days,
    round({{ shoplens.percentile_cont_agg('delay_days', 0.9) }}, 4) as p90_delay_days,
    round(avg(delivery_days), 4) as mean_delivery_days
from shipments
group by carrier, region, {{ shoplens.week_start('shipped_date') }}
