"""Pure, Dagster-free building blocks: settings, canonical schemas, ingestion and file I/O."""
