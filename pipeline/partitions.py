"""Partitions shared by the assets: calls are collected per day of call time (UTC)."""

from dagster import DailyPartitionsDefinition

from pipeline.settings import Settings

# end_offset=1: today's partition exists while today's logs still arrive.
daily = DailyPartitionsDefinition(start_date=Settings.from_env().first_day.isoformat(), end_offset=1)
