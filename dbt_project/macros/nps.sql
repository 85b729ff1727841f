{#
  NPS helpers. Two kinds of score are never mixed:
  - nps_survey: the 0-10 "how likely are you to recommend" answer. Promoter 9-10, passive 7-8, detractor 0-6.
  - star_proxy: a 1-5 star review used as a proxy. Promoter 5, passive 4, detractor 1-3.
  Scores outside their scale give a null bucket (ingestion should already have quarantined them).
#}
{% macro nps_bucket(score, scale) -%}
    case
        when {{ scale }} = 'nps_0_10' and {{ score }} between 9 and 10 then 'promoter'
        when {{ scale }} = 'nps_0_10' and {{ score }} between 7 and 8 then 'passive'
        when {{ scale }} = 'nps_0_10' and {{ score }} between 0 and 6 then 'detractor'
        when {{ scale }} = 'stars_1_5' and {{ score }} = 5 then 'promoter'
        when {{ scale }} = 'stars_1_5' and {{ score }} = 4 then 'passive'
        when {{ scale }} = 'stars_1_5' and {{ score }} between 1 and 3 then 'detractor'
    end
{%- endmacro %}

{% macro nps_score_kind(scale) -%}
    case {{ scale }} when 'nps_0_10' then 'nps_survey' when 'stars_1_5' then 'star_proxy' end
{%- endmacro %}

{#
  Aggregate columns for a group of classified answers (rows with a `bucket` column):
  n, promoters, passives, detractors, nps (-100..100) and its 95% adjusted-Wald interval.

  Adjusted Wald for NPS (Rocks 2016; Sauro & Lewis, "Quantifying the User Experience", MeasuringU):
  add 3/4 of an answer to promoters and to detractors (3 answers in all, n' = n + 3):
    p_p = (P + 0.75) / (n + 3), p_d = (D + 0.75) / (n + 3), nps_adj = p_p - p_d
    var = (p_p + p_d - (p_p - p_d)^2) / (n + 3)
    interval = 100 * (nps_adj -/+ 1.96 * sqrt(var)), clipped to [-100, 100]
  Check: n = 100, P = 40, D = 30 -> NPS 10, interval [-6.27, 25.69].
  The point estimate is the plain NPS; only the interval uses the adjusted proportions.
#}
{% macro nps_aggregates(bucket='bucket') -%}
    {%- set p = "sum(case when " ~ bucket ~ " = 'promoter' then 1 else 0 end)" -%}
    {%- set d = "sum(case when " ~ bucket ~ " = 'detractor' then 1 else 0 end)" -%}
    {%- set n = "count(" ~ bucket ~ ")" -%}
    {#- in double precision on every engine: Spark does decimal literals in DECIMAL arithmetic and rounds the
        product (p_p - p_d)^2 to 6 decimals, enough to move a bound across its rounding boundary -#}
    {%- set pp = "((cast(" ~ p ~ " as " ~ shoplens.type_double() ~ ") + 0.75) / (" ~ n ~ " + 3.0))" -%}
    {%- set pd = "((cast(" ~ d ~ " as " ~ shoplens.type_double() ~ ") + 0.75) / (" ~ n ~ " + 3.0))" -%}
    {%- set half = "1.96 * sqrt((" ~ pp ~ " + " ~ pd ~ " - (" ~ pp ~ " - " ~ pd ~ ") * (" ~ pp ~ " - " ~ pd ~ ")) / (" ~ n ~ " + 3.0))" -%}
    {{ n }} as n,
    cast({{ p }} as {{ dbt.type_bigint() }}) as promoters,
    cast(sum(case when {{ bucket }} = 'passive' then 1 else 0 end) as {{ dbt.type_bigint() }}) as passives,
    cast({{ d }} as {{ dbt.type_bigint() }}) as detractors,
    round(100.0 * {{ shoplens.safe_divide(p ~ " - " ~ d, n) }}, 2) as nps,
    round(greatest(-100.0, 100.0 * ({{ pp }} - {{ pd }} - {{ half }})), 2) as nps_ci_lower,
    round(least(100.0, 100.0 * ({{ pp }} - {{ pd }} + {{ half }})), 2) as nps_ci_upper,
    {{ n }} < {{ var('nps_small_sample_n') }} as is_small_sample
{%- endmacro %}

{% macro nps_measure_label(score_kind) -%}
    case {{ score_kind }}
        when 'nps_survey' then 'NPS (0-10 survey)'
        when 'star_proxy' then 'Star-review proxy NPS (1-5 stars; not a true NPS)'
    end
{%- endmacro %}
