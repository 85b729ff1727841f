{#
  The line fact: the one place where revenue is defined (see DECISIONLOG.md, "Revenue" and "Returns").
    line_amount = quantity x unit_price - discount
    Returns come in two shapes (var returns_are_credit_lines, set from the source manifest):
      false (default; synthetic shop, Shopify): `returned` is the status of the sale line whose goods came
            back: the sale is reversed, net_revenue 0, and the units still count as demand (they sold).
      true (Online Retail's C invoices): a `returned` line is a separate credit line for an earlier sale:
            net_revenue = -line_amount, and its units are not demand.
    completed lines earn line_amount; cancelled lines earn 0 and are not demand.

  Incremental on DuckDB (DECISIONLOG.md, "Incremental facts"): a run replaces the order days in the
  window [min_date, max_date]. A line depends on its own raw row and on the product snapshot only; a
  changed snapshot, returns convention or model code makes the Dagster asset rebuild in full.
#}
{{
    config(
        materialized=shoplens.incremental_on_duckdb(),
        incremental_strategy='date_window',
        window_column='order_date',
        unique_key='order_line_id',
        on_schema_change='fail',
    )
}}
with

lines as (

    select * from {{ ref('stg_raw__orders') }}
    {% if is_incremental() -%}
    -- partition_date (= order_date) is a stored Parquet column: the filter skips the other days' files
    where {{ shoplens.in_window('partition_date') }} and {{ shoplens.in_window('order_date') }}
    {%- endif %}

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
            when 'returned' then {{ -1 if var('returns_are_credit_lines') else 0 }} * line_amount
            else 0
        end as net_revenue,
        case
            when is_cancelled then 0
            when status = 'returned' and {{ 'true' if var('returns_are_credit_lines') else 'false' }} then 0
            else quantity
        end as demand_units
    from amounts

)

select * from final
