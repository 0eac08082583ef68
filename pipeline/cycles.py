"""Retraining cycles: a schedule re-finds the tasks over the logs collected so far (the new-logs sensor keeps them
coming), and when `tasks` is fresh, a sensor asks for a run per task: pick, train and evaluate for a task that is
new, has grown, or whose held-out score fell; evaluate only for the others, which keep their adapter. The report
follows every evaluation (declarative automation, on `conversion_report`)."""

from __future__ import annotations

import os

import pandas as pd
from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventLogEntry,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    asset_sensor,
)
from dagster_duckdb import DuckDBResource

from finetune.adapters import promotions, registry
from pipeline.decision import DecisionConfig, retrain_reason
from pipeline.jobs import convert_tasks, evaluate_tasks, find_tasks
from pipeline.resources import Conversion
from pipeline.selection import split_by_time
from pipeline.tasks import task_calls

# SLM_RETRAIN_CRON: when a cycle starts; weekly, Monday 03:00 UTC, by default.
retraining = ScheduleDefinition(
    name="retraining",
    job=find_tasks,
    cron_schedule=os.environ.get("SLM_RETRAIN_CRON", "0 3 * * 1"),
    default_status=DefaultScheduleStatus.RUNNING,
)

# Runs the report's automation condition (every 30 s by default), on from the start so that `dagster dev` and the
# daemon keep the report current without a click in the UI.
report_automation = AutomationConditionSensorDefinition(
    "report_automation", target=AssetSelection.groups("report"), default_status=DefaultSensorStatus.RUNNING
)


def cycle_plan(
    task_ids: list[str], train_calls: dict[str, int], adapters: dict[str, pd.DataFrame], scores_now: dict[str, float],
    scores_at_promotion: dict[str, float], config: DecisionConfig,
) -> dict[str, str]:
    """Task id → why it retrains this cycle, "" for a task that keeps its adapter and is only evaluated again."""
    plan = {}
    for task_id in task_ids:
        versions = adapters.get(task_id)
        trained_on = int(versions["train_calls"].iloc[-1]) if versions is not None and len(versions) else None
        plan[task_id] = retrain_reason(train_calls[task_id], trained_on, scores_now.get(task_id),
                                       scores_at_promotion.get(task_id), config)
    return plan


@asset_sensor(asset_key=AssetKey("tasks"), jobs=[convert_tasks, evaluate_tasks], default_status=DefaultSensorStatus.RUNNING)
def retrain_changed_tasks(context: SensorEvaluationContext, asset_event: EventLogEntry, warehouse: DuckDBResource, conversion: Conversion):
    """After the tasks are found again: one run per task, retraining only those that need it."""
    selection, config = conversion.selection(), conversion.decision()
    with warehouse.get_connection() as connection:
        task_ids = [t for (t,) in connection.execute("select task_id from tasks order by task_id").fetchall()]
        train_calls = {t: len(split_by_time(task_calls(connection, t), selection.held_out_share)[0]) for t in task_ids}
        has_evaluations = connection.execute("select count(*) from information_schema.tables where table_name = 'evaluations'").fetchone()[0]
        scores_now = dict(connection.execute("select task_id, score from evaluations where promoted").fetchall()) if has_evaluations else {}
    at_promotion = {}
    for task_id in task_ids:
        promoted = [entry for entry in promotions(conversion.adapters_root, task_id) if entry["promoted"]]
        if promoted:
            at_promotion[task_id] = promoted[-1]["score"]
    adapters = {t: registry(conversion.adapters_root, t) for t in task_ids}
    plan = cycle_plan(task_ids, train_calls, adapters, scores_now, at_promotion, config)
    for task_id, reason in plan.items():
        context.log.info(f"{task_id}: {'retrain, ' + reason if reason else 'keeps its adapter, evaluated again'}")
        yield RunRequest(
            run_key=f"{task_id}-{asset_event.run_id}",  # once per materialization of `tasks`
            job_name=(convert_tasks if reason else evaluate_tasks).name,
            partition_key=task_id,
            tags={"slm/retrain": reason or "no"},
        )
