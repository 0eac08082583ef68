"""Sensors: new log files start a run of steps 1–2 over the days they hold; fresh `tasks` start a run per task,
retraining only the tasks that need it; the report's automation keeps it current."""

from __future__ import annotations

import hashlib
import json

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    EventLogEntry,
    ResourceParam,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset_sensor,
    sensor,
)

from finetune.adapters import promotions, registry
from orchestration.jobs import convert_tasks, evaluate_tasks
from orchestration.partitions import day_range
from pipeline.collect import LogFolder
from pipeline.decision import cycle_plan
from pipeline.pick import split_by_time
from pipeline.settings import Settings
from pipeline.warehouse import Warehouse


@sensor(
    asset_selection=AssetSelection.groups("collect", "scrub"),
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def new_log_files(context: SensorEvaluationContext, logs: ResourceParam[LogFolder]):
    """Notices log files whose content it has not seen and asks for one run over the days they hold."""
    if not logs.folder.is_dir():
        return SkipReason(f"no log folder at {logs.folder}")
    seen = set(json.loads(context.cursor or "[]"))
    files = logs.files().files
    new = [f for f in files if f.sha256 not in seen]
    if not new:
        return SkipReason(f"no new log files among {len(files)}")
    days = logs.days(new)  # fills the parse cache, so the run itself reads nothing twice
    cursor = json.dumps(sorted(seen | {f.sha256 for f in files}))
    if not days:
        return SensorResult(skip_reason=f"{len(new)} new files hold no records", cursor=cursor)
    run_key = hashlib.sha256("".join(sorted(f.sha256 for f in new)).encode()).hexdigest()[:16]
    context.log.info(f"{len(new)} new log files touch {len(days)} days, {days[0]} to {days[-1]}")
    return SensorResult(run_requests=[RunRequest(run_key=run_key, tags=day_range(days))], cursor=cursor)


@asset_sensor(
    asset_key=AssetKey("tasks"), jobs=[convert_tasks, evaluate_tasks], default_status=DefaultSensorStatus.RUNNING
)
def retrain_changed_tasks(
    context: SensorEvaluationContext,
    asset_event: EventLogEntry,
    warehouse: ResourceParam[Warehouse],
    settings: ResourceParam[Settings],
):
    """After the tasks are found again: one run per task, retraining only those that need it."""
    task_ids = sorted(warehouse.read("tasks")["task_id"])
    train_calls = {t: len(split_by_time(warehouse.task_calls(t), settings.pick.held_out_share)[0]) for t in task_ids}
    evaluations = warehouse.read("evaluations")
    promoted = evaluations[evaluations["promoted"].astype(bool)]
    scores_now = dict(zip(promoted["task_id"], promoted["score"]))
    at_promotion, last_judged = {}, {}
    for task_id in task_ids:
        history = promotions(settings.adapters_dir, task_id)
        promoted = [entry for entry in history if entry["promoted"]]
        if promoted:
            at_promotion[task_id] = promoted[-1]["score"]
        if history:
            last_judged[task_id] = history[-1]
    adapters = {t: registry(settings.adapters_dir, t) for t in task_ids}
    plan = cycle_plan(task_ids, train_calls, adapters, scores_now, at_promotion, settings.decision, last_judged)
    for task_id, reason in plan.items():
        context.log.info(f"{task_id}: {'retrain, ' + reason if reason else 'keeps its adapter, evaluated again'}")
        yield RunRequest(
            run_key=f"{task_id}-{asset_event.run_id}",  # once per materialization of `tasks`
            job_name=(convert_tasks if reason else evaluate_tasks).name,
            partition_key=task_id,
            tags={"slm/retrain": reason or "no"},
        )


# Runs the report's automation condition (every 30 s by default), on from the start so that `dagster dev` and the
# daemon keep the report current without a click in the UI.
report_automation = AutomationConditionSensorDefinition(
    "report_automation", target=AssetSelection.groups("report"), default_status=DefaultSensorStatus.RUNNING
)

SENSORS = [new_log_files, retrain_changed_tasks, report_automation]
