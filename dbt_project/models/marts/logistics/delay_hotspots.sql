{#
  Region-days where deliveries went wrong: among shipments due (promised) that day in the region and
  already delivered, at least `hotspot_min_shipments` and a late share of at least `hotspot_late_share`.
#}
with

due as (

    select
        region,
        promised_date as incident_date,
        count(*) as shipments_due,
        cast(sum(case when is_late then 1 else 0 end) as {{ dbt.type_bigint() }}) as late_shipments,
        round(avg(case when is_late then delay_days end), 4) as mean_delay_days_of_late
    from {{ ref('int_shipments') }}
    where is_delivered
    group by region, promised_date

)

select
    region,
    incident_date,
    shipments_due,
    late_shipments,
    round({{ shoplens.safe_divide('late_shipments', 'shipments_due') }}, 4) as late_share,
    mean_delay_days_of_late
from due
where shipments_due >= {{ var('hotspot_min_shipments') }}
    and {{ shoplens.safe_divide('late_shipments', 'shipments_due') }} >= {{ var('hotspot_late_share') }}
