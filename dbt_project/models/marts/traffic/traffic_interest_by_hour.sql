{#
  Product interest by hour of day (shop local time) and category: event counts and step rates, summed
  over the days of int_traffic_interest_daily (incremental, so a nightly run reads one day of events).
  `sessions` counts a session once per day it touched the category in that hour: the same as a distinct
  count over the whole history unless one session has events in the same hour on two days, which needs a
  session longer than 23 hours (30 minutes of inactivity end one; see traffic_funnel).
#}
with

daily as (

    select * from {{ ref('int_traffic_interest_daily') }}

),

hourly as (

    select
        hour_of_day,
        category,
        cast(sum(sessions) as {{ dbt.type_bigint() }}) as sessions,
        cast(sum(views) as {{ dbt.type_bigint() }}) as views,
        cast(sum(carts) as {{ dbt.type_bigint() }}) as carts,
        cast(sum(purchases) as {{ dbt.type_bigint() }}) as purchases
    from daily
    group by hour_of_day, category

)

select
    hourly.*,
    round({{ shoplens.safe_divide('carts', 'views') }}, 4) as carts_per_view,
    round({{ shoplens.safe_divide('purchases', 'views') }}, 4) as purchases_per_view
from hourly
