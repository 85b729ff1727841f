{#
  Coupons for customers hit by a delay hotspot: one per customer per incident (region-day), for orders
  whose shipment to that region was promised that day and arrived late. Guests cannot get a coupon.
#}
with

late_in_hotspot as (

    select
        shipments.customer_id,
        shipments.order_id,
        hotspots.region,
        hotspots.incident_date,
        shipments.delay_days
    from {{ ref('int_shipments') }} as shipments
    inner join {{ ref('delay_hotspots') }} as hotspots
        on shipments.region = hotspots.region
        and shipments.promised_date = hotspots.incident_date
    where shipments.is_late
        and shipments.customer_id is not null

),

per_customer as (

    select
        customer_id,
        region,
        incident_date,
        min(order_id) as order_id,
        count(distinct order_id) as late_orders,
        round(max(delay_days), 4) as max_delay_days
    from late_in_hotspot
    group by customer_id, region, incident_date

)

select
    {{ dbt.concat([
        "'CMP-'", "region", "'-'", "cast(incident_date as " ~ dbt.type_string() ~ ")", "'-'", "customer_id"
    ]) }} as coupon_id,
    customer_id,
    order_id,
    region,
    incident_date,
    late_orders,
    max_delay_days
from per_customer
