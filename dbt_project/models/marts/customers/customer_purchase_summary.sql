{#
  BG/NBD and Gamma-Gamma input in the convention of lifetimes' summary_data_from_transaction_data
  (freq='D', observation_period_end = as-of date, monetary_value_col = net revenue):
    frequency      = purchase days after the first (repeat purchase days)
    recency        = days from the first to the last purchase day
    T              = days from the first purchase day to the as-of date
    monetary_value = mean net revenue per repeat purchase day (the first day excluded); 0 when frequency = 0
  Several orders on one day are one purchase day with their values summed (freq='D').
#}
with

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

purchase_days as (

    select
        orders.customer_id,
        orders.order_date,
        sum(orders.net_revenue) as day_value
    from {{ ref('int_orders') }} as orders
    cross join as_of
    where orders.is_purchase
        and orders.customer_id is not null
        and orders.order_date <= as_of.as_of_date
    group by orders.customer_id, orders.order_date

),

numbered as (

    select
        purchase_days.*,
        row_number() over (partition by customer_id order by order_date) as day_number
    from purchase_days

),

per_customer as (

    select
        customer_id,
        count(*) - 1 as frequency,
        min(order_date) as first_purchase_date,
        max(order_date) as last_purchase_date,
        sum(case when day_number > 1 then day_value else 0 end) as repeat_value
    from numbered
    group by customer_id

),

final as (

    select
        per_customer.customer_id,
        cast(per_customer.frequency as integer) as frequency,
        {{ shoplens.days_between('per_customer.first_purchase_date', 'per_customer.last_purchase_date') }} as recency,
        {{ shoplens.days_between('per_customer.first_purchase_date', 'as_of.as_of_date') }} as T,
        round(coalesce({{ shoplens.safe_divide('per_customer.repeat_value', 'per_customer.frequency') }}, 0.0), 4) as monetary_value,
        per_customer.first_purchase_date,
        per_customer.last_purchase_date,
        as_of.as_of_date,
        per_customer.frequency > 0 and per_customer.repeat_value > 0 as is_gamma_gamma_eligible
    from per_customer
    cross join as_of

)

select * from final
