"""Partitions: calls per day of call time (UTC), and steps 4–6 per task."""

from datetime import date

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

# Registered by step 3 as it finds tasks; steps 4–6 train and evaluate each task on its own.
TASKS = DynamicPartitionsDefinition(name="task")

# The tags a run over a range of days carries: what `dagster asset materialize --partition-range` and a UI backfill
# set. Dagster exports no public constant for them (its own are in a private module), so they are written here.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def days(first_day: date) -> DailyPartitionsDefinition:
    # end_offset=1: today's partition exists while today's logs still arrive.
    return DailyPartitionsDefinition(start_date=first_day.isoformat(), end_offset=1)


def day_range(days: list[str]) -> dict[str, str]:
    """The tags of one run over the days from the first to the last of `days` (sorted)."""
    return {RANGE_START_TAG: days[0], RANGE_END_TAG: days[-1]}
