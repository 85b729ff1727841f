"""The daily partitions every ingestion asset shares (the shop's local calendar day)."""

from __future__ import annotations

import dagster as dg

from pipelines.core.settings import get_settings

_settings = get_settings()

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date, timezone=_settings.timezone, end_offset=1
)
