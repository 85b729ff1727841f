{#
  Register the raw Parquet layer for an engine that cannot read a file path as a source.

  DuckDB reads each raw table straight from its folder (`external_location` in _sources.yml), so there is
  nothing to do there. Spark has no such hook in dbt-spark: each table of the `raw` source becomes an
  EXTERNAL Parquet table `<target schema>_raw.<table>` over `<meta.raw_location>/<table>` (a table-level
  `meta.spark_location` overrides the folder), read with the same rules as on DuckDB:
    recursiveFileLookup  the daily `date=YYYY-MM-DD/` and `snapshot/` folders are plain folders: no partition
                         column is inferred (inventory and competitor prices carry their own `date`),
    pathGlobFilter       only `*.parquet` files, as DuckDB's glob `*/*.parquet` (a stray temporary or
                         marker file is not read as data),
    mergeSchema          files written before a column was added still read (DuckDB's union_by_name).
  Run it before `dbt build` whenever the raw layer may have new columns (it drops and re-creates the table
  definitions; dropping an external table never deletes its files):
      dbt run-operation create_spark_sources --target spark
      dbt run-operation create_spark_sources --target spark --args '{tables: [orders, customers]}'
  `tables` limits it to the tables the current source delivers (a source without shipments must not
  register an empty folder: Spark cannot infer a schema from no files).
  Why not dbt-external-tables: the project uses no dbt packages (no `dbt deps`, no network at build time).
#}
{% macro create_spark_sources(tables=none) %}
    {{ return(adapter.dispatch('create_spark_sources', 'shoplens')(tables)) }}
{% endmacro %}

{% macro default__create_spark_sources(tables=none) %}
    {{ log("create_spark_sources: nothing to do on " ~ target.type ~ " (raw Parquet is read through external_location)", info=true) }}
{% endmacro %}

{% macro spark__create_spark_sources(tables=none) %}
    {%- set nodes = [] -%}
    {%- for node in graph.sources.values() | sort(attribute='name') -%}
        {%- if node.source_name == 'raw' and (tables is none or node.name in tables) -%}
            {%- do nodes.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if tables is not none -%}
        {%- set known = nodes | map(attribute='name') | list -%}
        {%- for table in tables if table not in known -%}
            {{ exceptions.raise_compiler_error("create_spark_sources: '" ~ table ~ "' is not a table of source 'raw' (_sources.yml)") }}
        {%- endfor -%}
    {%- endif -%}

    {%- for schema in nodes | map(attribute='schema') | unique -%}
        {% do run_query('create schema if not exists ' ~ schema) %}
    {%- endfor -%}

    {%- for node in nodes -%}
        {%- if node.meta.get('spark_location') -%}
            {%- set location = node.meta['spark_location'] -%}
        {%- elif node.source_meta.get('raw_location') -%}
            {%- set location = node.source_meta['raw_location'] ~ '/' ~ node.identifier -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error("create_spark_sources: source raw." ~ node.name ~ " has no meta.raw_location (source) or meta.spark_location (table)") }}
        {%- endif -%}
        {%- set relation = api.Relation.create(schema=node.schema, identifier=node.identifier, type='table') -%}
        {% do run_query('drop table if exists ' ~ relation) %}
        {% do run_query(
            'create table ' ~ relation ~ ' using parquet options ('
            ~ "path '" ~ location | replace("'", "\\'") ~ "', "
            ~ "recursiveFileLookup 'true', pathGlobFilter '*.parquet', mergeSchema 'true')"
        ) %}
        {{ log("create_spark_sources: " ~ relation ~ " -> " ~ location, info=true) }}
    {%- endfor -%}
{% endmacro %}
