"""Retraining cycles: a schedule re-finds the tasks over the logs collected so far (the new-logs sensor keeps them
coming); when `tasks` is fresh, the `retrain_changed_tasks` sensor takes it from there."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from orchestration.jobs import find_tasks, update_serving
from pipeline.settings import DecisionConfig, ServeConfig


def retraining(config: DecisionConfig) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="retraining",
        job=find_tasks,
        cron_schedule=config.retrain_cron,
        default_status=DefaultScheduleStatus.RUNNING,
    )


def serving(config: ServeConfig) -> ScheduleDefinition:
    """Live agreement scored and the modes updated, so that a task moves between shadow, slm and llm on its own."""
    return ScheduleDefinition(
        name="serving",
        job=update_serving,
        cron_schedule=config.modes_cron,
        default_status=DefaultScheduleStatus.RUNNING,
    )
