{#
  The line fact: the one place where revenue is defined (see DECISIONLOG.md, "Revenue" and "Returns").
    line_amount = quantity x unit_price - discount
    net_revenue = line_amount (completed), returned_revenue_factor x line_amount (returned, default -1),
                  0 (cancelled)
    demand_units = quantity unless cancelled
#}
with

lines as (

    select * from {{ ref('stg_raw__orders') }}

),

products as (

    select sku, category, unit_cost, weight_kg from {{ ref('stg_raw__products') }}

),

amounts as (

    select
        lines.order_id,
        lines.line_no,
        {{ dbt.concat(["lines.order_id", "'-'", "cast(lines.line_no as " ~ dbt.type_string() ~ ")"]) }} as order_line_id,
        lines.customer_id,
        lines.sku,
        coalesce(products.category, 'unknown') as category,
        lines.status,
        lines.status = 'cancelled' as is_cancelled,
        lines.status = 'returned' as is_returned,
        lines.quantity,
        lines.unit_price,
        coalesce(lines.discount, 0) as discount,
        lines.quantity * lines.unit_price as gross_amount,
        lines.quantity * lines.unit_price - coalesce(lines.discount, 0) as line_amount,
        products.unit_cost,
        products.weight_kg as unit_weight_kg,
        lines.currency,
        lines.channel,
        lines.region,
        lines.order_ts,
        lines.order_date
    from lines
    left join products on lines.sku = products.sku

),

final as (

    select
        amounts.*,
        case status
            when 'completed' then line_amount
            when 'returned' then {{ var('returned_revenue_factor') }} * line_amount
            else 0
        end as net_revenue,
        case when is_cancelled then 0 else quantity end as demand_units
    from amounts

)

select * from final
