"""The daily partitions every ingestion asset shares (the shop's local calendar day)."""

from __future__ import annotations

import dagster as dg

from pipelines.core.settings import get_settings

_settings = get_settings()

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date, timezone=_settings.timezone, end_offset=1
)

# One partition per product category, for the forecast fan-out (decisions/category_demand_forecast).
# Dynamic: the categories are the shop's own; decisions/demand_model and `python -m pipelines.fanout`
# register them from the published marts.
CATEGORY_PARTITIONS = "product_category"
category_partitions = dg.DynamicPartitionsDefinition(name=CATEGORY_PARTITIONS)
