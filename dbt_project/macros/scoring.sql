{#
  Quintile score 1-5 of `expression` across all rows of the query (a window function).
  Higher value -> higher score; pass descending=true to reverse (recency: fewer days -> 5).

  Tie rule (deterministic, documented in DECISIONLOG.md): equal values always get the same score,
  the score of the first position the tied group occupies: score = 1 + floor(5 * (rank - 1) / n),
  with rank() (1 for the lowest value). Customer ids never break ties, so the score does not depend
  on how ids were assigned.
#}
{% macro quintile_score(expression, descending=false) -%}
    cast(
        floor(
            5.0 * (rank() over (order by {{ expression }} {{ 'desc' if descending else 'asc' }}) - 1)
            / count(*) over ()
        ) as integer
    ) + 1
{%- endmacro %}
