{#
  Product interest per day, hour of day (shop local time) and category: events per step and the sessions
  touching the category in that hour. traffic_interest_by_hour sums it over the days.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a day's rows depend on that day's events
  only (plus the category of each SKU, and a changed products snapshot rebuilds every incremental model),
  so a nightly run reads the window's traffic partitions instead of every event (at the large benchmark
  size the whole-history aggregate took 106 s of each nightly build).
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='event_date',
        unique_key=['event_date', 'hour_of_day', 'category'],
        on_schema_change='fail',
    )
}}
with

events as (

    select * from {{ ref('stg_raw__traffic') }}
    where sku is not null
    {%- if is_incremental() %}
      -- partition_date (= the event's day) is a stored Parquet column: the filter skips the other days' files
      and {{ shoplens.in_window('partition_date') }}
      and {{ shoplens.in_window('cast(event_ts as date)') }}
    {%- endif %}

),

products as (

    select sku, category from {{ ref('stg_raw__products') }}

)

select
    cast(events.event_ts as date) as event_date,
    cast(extract(hour from events.event_ts) as integer) as hour_of_day,
    coalesce(products.category, 'unknown') as category,
    count(distinct events.session_id) as sessions,
    cast(sum(case when events.event_type = 'view' then 1 else 0 end) as {{ dbt.type_bigint() }}) as views,
    cast(sum(case when events.event_type = 'cart' then 1 else 0 end) as {{ dbt.type_bigint() }}) as carts,
    cast(sum(case when events.event_type = 'purchase' then 1 else 0 end) as {{ dbt.type_bigint() }}) as purchases
from events
left join products on events.sku = products.sku
group by
    cast(events.event_ts as date),
    cast(extract(hour from events.event_ts) as integer),
    coalesce(products.category, 'unknown')
