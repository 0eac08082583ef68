"""The Dagster code location: every asset, its storage, the jobs, sensors and schedule, built from `Settings`."""

from __future__ import annotations

from dagster import Definitions, ExecutorDefinition, in_process_executor, multiprocess_executor

from assets import build_assets
from orchestration.io_manager import WarehouseIOManager
from orchestration.jobs import JOBS
from orchestration.partitions import TASKS, days
from orchestration.schedules import retraining, serving
from orchestration.sensors import SENSORS
from pipeline.collect import LogFolder
from pipeline.settings import Settings
from pipeline.warehouse import open_warehouse


def build_definitions(settings: Settings) -> Definitions:
    """Each tabular asset becomes a table of the warehouse named after it."""
    warehouse = open_warehouse(settings.warehouse)
    return Definitions(
        assets=build_assets(days(settings.first_day), TASKS),
        jobs=JOBS,
        schedules=[retraining(settings.decision), serving(settings.serve)],
        sensors=SENSORS,
        executor=_executor(settings),
        resources={
            "io_manager": WarehouseIOManager(warehouse),
            "warehouse": warehouse,
            "logs": LogFolder.of(settings),
            "settings": settings,
        },
    )


def _executor(settings: Settings) -> ExecutorDefinition:
    name = settings.executor
    if name == "k8s":  # production: every step in its own pod (needs the `production` extra)
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if name == "celery":  # every step a task for the Celery workers on the broker (needs the `production` extra)
        from dagster_celery import celery_executor

        if not settings.celery_broker:
            raise ValueError("SLM_EXECUTOR=celery needs SLM_CELERY_BROKER, the workers' broker (redis://host:6379/0)")
        return celery_executor.configured({"broker": settings.celery_broker, "backend": settings.celery_broker})
    executors = {"multiprocess": multiprocess_executor, "in_process": in_process_executor}
    if name not in executors:
        raise ValueError(f"SLM_EXECUTOR={name!r}: expected one of multiprocess, in_process, celery, k8s")
    return executors[name]


defs = build_definitions(Settings.from_env())
