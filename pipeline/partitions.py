"""Partitions shared by the assets: calls per day of call time (UTC), and steps 4–6 per task."""

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

from pipeline.settings import Settings

# end_offset=1: today's partition exists while today's logs still arrive.
daily = DailyPartitionsDefinition(start_date=Settings.from_env().first_day.isoformat(), end_offset=1)

# Registered by step 3 as it finds tasks; steps 4–6 train and evaluate each task on its own.
tasks = DynamicPartitionsDefinition(name="task")
