{#
  Session funnel per channel, device and day. A session is attributed to the channel, device and day of
  its first event; it "reaches" a step when it has at least one event of that step.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a session that starts before midnight
  and goes on after it changes its first day's row when the next day's events arrive, so a run rebuilds
  the window plus the day before it (window_lookback_days). It reads events from two days before the
  window (to tell a session that started earlier, whose first event then lies outside the rebuilt days)
  to one day after it (the end of sessions that started on the window's last day). This holds for
  sessions shorter than 24 hours, which session definitions guarantee (30 minutes of inactivity ends one).
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='session_date',
        window_lookback_days=1,
        unique_key=['session_date', 'channel', 'device'],
        on_schema_change='fail',
    )
}}
with

events as (

    select * from {{ ref('stg_raw__traffic') }}
    {% if is_incremental() -%}
    -- partition_date (= the event's day) is a stored Parquet column: the filter skips the other days' files
    where {{ shoplens.in_window('partition_date', lookback_days=2, lookahead_days=1) }}
      and {{ shoplens.in_window('cast(event_ts as date)', lookback_days=2, lookahead_days=1) }}
    {%- endif %}

),

sessions as (

    -- One pass over the events: the session's first event (by time, then event type and SKU, as before)
    -- is the smallest struct of those fields, so no window sort over every event is needed.
    select
        session_id,
        min({{ shoplens.named_struct(['event_ts', 'event_type', 'sku', 'channel', 'device']) }}) as first_event,
        max(case when event_type = 'view' then 1 else 0 end) as has_view,
        max(case when event_type = 'cart' then 1 else 0 end) as has_cart,
        max(case when event_type = 'checkout' then 1 else 0 end) as has_checkout,
        max(case when event_type = 'purchase' then 1 else 0 end) as has_purchase,
        cast(sum(case when event_type = 'view' then 1 else 0 end) as {{ dbt.type_bigint() }}) as views,
        cast(sum(case when event_type = 'cart' then 1 else 0 end) as {{ dbt.type_bigint() }}) as carts,
        cast(sum(case when event_type = 'checkout' then 1 else 0 end) as {{ dbt.type_bigint() }}) as checkouts,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as {{ dbt.type_bigint() }}) as purchases
    from events
    group by session_id

),

daily as (

    select
        cast(first_event.event_ts as date) as session_date,
        first_event.channel as channel,
        first_event.device as device,
        count(*) as sessions,
        cast(sum(has_view) as {{ dbt.type_bigint() }}) as view_sessions,
        cast(sum(has_cart) as {{ dbt.type_bigint() }}) as cart_sessions,
        cast(sum(has_checkout) as {{ dbt.type_bigint() }}) as checkout_sessions,
        cast(sum(has_purchase) as {{ dbt.type_bigint() }}) as purchase_sessions,
        cast(sum(views) as {{ dbt.type_bigint() }}) as views,
        cast(sum(carts) as {{ dbt.type_bigint() }}) as carts,
        cast(sum(checkouts) as {{ dbt.type_bigint() }}) as checkouts,
        cast(sum(purchases) as {{ dbt.type_bigint() }}) as purchases
    from sessions
    group by cast(first_event.event_ts as date), first_event.channel, first_event.device

)

select
    session_date,
    coalesce(channel, 'unknown') as channel,
    coalesce(device, 'unknown') as device,
    sessions,
    view_sessions,
    cart_sessions,
    checkout_sessions,
    purchase_sessions,
    views,
    carts,
    checkouts,
    purchases,
    round({{ shoplens.safe_divide('cart_sessions', 'view_sessions') }}, 4) as view_to_cart_rate,
    round({{ shoplens.safe_divide('checkout_sessions', 'cart_sessions') }}, 4) as cart_to_checkout_rate,
    round({{ shoplens.safe_divide('purchase_sessions', 'checkout_sessions') }}, 4) as checkout_to_purchase_rate,
    round({{ shoplens.safe_divide('purchase_sessions', 'sessions') }}, 4) as session_conversion_rate
from daily
{% if is_incremental() -%}
where {{ shoplens.in_window('session_date', lookback_days=1) }}
{%- endif %}
