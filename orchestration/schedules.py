"""Retraining cycles: a schedule re-finds the tasks over the logs collected so far (the new-logs sensor keeps them
coming); when `tasks` is fresh, the `retrain_changed_tasks` sensor takes it from there."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.jobs import find_tasks
from pipeline.settings import DecisionConfig


def retraining(config: DecisionConfig) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="retraining",
        job=find_tasks,
        cron_schedule=config.retrain_cron,
        default_status=DefaultScheduleStatus.RUNNING,
    )
