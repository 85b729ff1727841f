with

products as (

    select * from {{ ref('stg_raw__products') }}

),

sales as (

    select
        sku,
        min(case when not is_cancelled then order_date end) as first_sale_date,
        max(case when not is_cancelled then order_date end) as last_sale_date,
        cast(sum(demand_units) as {{ dbt.type_bigint() }}) as units_sold,
        sum(net_revenue) as net_revenue
    from {{ ref('fct_order_lines') }}
    group by sku

),

final as (

    select
        products.sku,
        products.product_name,
        products.category,
        products.supplier,
        products.unit_cost,
        products.list_price,
        products.list_price - products.unit_cost as unit_margin,
        round({{ shoplens.safe_divide('products.list_price - products.unit_cost', 'products.list_price') }}, 4) as margin_rate,
        products.weight_kg,
        products.lead_time_days,
        sales.first_sale_date,
        sales.last_sale_date,
        coalesce(sales.units_sold, 0) as units_sold,
        coalesce(sales.net_revenue, 0) as net_revenue
    from products
    left join sales on products.sku = sales.sku

)

select * from final
