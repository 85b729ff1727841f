-- Splitting shipments over categories neither creates nor loses emissions: the shares of each shipment
-- sum to 1, and carbon_monthly adds up to carbon_per_shipment (to rounding).
select
    'shipment ' || shipment_id || ' shares sum to ' || cast(sum(allocation_share) as {{ dbt.type_string() }}) as problem
from {{ ref('int_shipment_category_split') }}
group by shipment_id
having abs(sum(allocation_share) - 1.0) > 0.000001

union all

select 'carbon_monthly total differs from carbon_per_shipment' as problem
from (select sum(kg_co2e) as kg from {{ ref('carbon_monthly') }}) as monthly
cross join (select sum(total_kg_co2e) as kg from {{ ref('carbon_per_shipment') }}) as shipments
where abs(coalesce(monthly.kg, 0) - coalesce(shipments.kg, 0)) > 0.001
