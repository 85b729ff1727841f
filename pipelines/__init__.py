"""shoplens Dagster code location. Importing this package imports no Dagster: see pipelines.definitions."""
