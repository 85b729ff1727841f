{#
  The one date every "as of" mart is computed at. var('as_of_date') when given, else the last order
  date in the data: deterministic (a rebuild on the same data gives the same marts), unlike current_date.
  A model of its own so unit tests can pin it with one given row.
#}
-- depends_on: {{ ref('stg_raw__orders') }}
{% if var('as_of_date') -%}
select cast('{{ var("as_of_date") }}' as date) as as_of_date
{%- else -%}
select max(order_date) as as_of_date from {{ ref('stg_raw__orders') }}
{%- endif %}
