{# End-of-day stock per SKU and day, summed over warehouses. #}
select
    sku,
    stock_date,
    cast(sum(on_hand) as {{ dbt.type_bigint() }}) as on_hand,
    cast(sum(coalesce(on_order, 0)) as {{ dbt.type_bigint() }}) as on_order,
    count(*) as warehouses
from {{ ref('stg_raw__inventory') }}
group by sku, stock_date
