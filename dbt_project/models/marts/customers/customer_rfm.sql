{#
  RFM as of int_as_of_date, for identified customers with at least one purchase on or before it.
  recency = days since the last purchase; frequency = distinct purchases (orders with a non-cancelled
  line); monetary = net revenue (returns subtracted). Scores are quintiles 1-5 (recency reversed:
  5 = most recent); ties share a score (macros/scoring.sql). fm_score = (F + M) / 2 rounded half up.
  The segment comes from the 5 x 5 seed map on (recency_score, fm_score), its action from segment_actions.
#}
with

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

purchases as (

    select orders.*
    from {{ ref('int_orders') }} as orders
    cross join as_of
    where orders.is_purchase
        and orders.customer_id is not null
        and orders.order_date <= as_of.as_of_date

),

per_customer as (

    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(distinct order_id) as frequency,
        sum(net_revenue) as monetary
    from purchases
    group by customer_id

),

metrics as (

    select
        per_customer.customer_id,
        per_customer.first_order_date,
        per_customer.last_order_date,
        as_of.as_of_date,
        {{ shoplens.days_between('per_customer.last_order_date', 'as_of.as_of_date') }} as recency_days,
        per_customer.frequency,
        per_customer.monetary,
        round({{ shoplens.safe_divide('per_customer.monetary', 'per_customer.frequency') }}, 2) as average_order_value
    from per_customer
    cross join as_of

),

scored as (

    select
        metrics.*,
        {{ shoplens.quintile_score('recency_days', descending=true) }} as recency_score,
        {{ shoplens.quintile_score('frequency') }} as frequency_score,
        {{ shoplens.quintile_score('monetary') }} as monetary_score
    from metrics

),

combined as (

    select
        scored.*,
        cast(floor((frequency_score + monetary_score) / 2.0 + 0.5) as integer) as fm_score,
        {{ dbt.concat([
            "cast(recency_score as " ~ dbt.type_string() ~ ")",
            "cast(frequency_score as " ~ dbt.type_string() ~ ")",
            "cast(monetary_score as " ~ dbt.type_string() ~ ")",
        ]) }} as rfm_code
    from scored

),

final as (

    select
        combined.customer_id,
        combined.as_of_date,
        combined.first_order_date,
        combined.last_order_date,
        combined.recency_days,
        combined.frequency,
        combined.monetary,
        combined.average_order_value,
        combined.recency_score,
        combined.frequency_score,
        combined.monetary_score,
        combined.fm_score,
        combined.rfm_code,
        segment_map.segment,
        actions.action as segment_action
    from combined
    left join {{ ref('rfm_segment_map') }} as segment_map
        on combined.recency_score = segment_map.recency_score
        and combined.fm_score = segment_map.fm_score
    left join {{ ref('segment_actions') }} as actions
        on segment_map.segment = actions.segment

)

select * from final
