"""Decision models: plain Python on Polars frames, no Dagster import."""
