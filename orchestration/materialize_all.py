"""Materialize every asset for the logs at hand (what `make demo` runs), then say where the results are.

Steps 1–3 run once over all days; steps 4–6 run once per task, so a task that fails is reported and the others go on;
the report comes last.
"""

from __future__ import annotations

import time

from dagster import DagsterInstance, Definitions

from orchestration.definitions import build_definitions
from orchestration.jobs import collect_and_scrub, convert_tasks, find_tasks, report
from orchestration.partitions import TASKS, day_range
from pipeline.collect import LogFolder
from pipeline.settings import Settings
from pipeline.warehouse import open_warehouse


def main() -> None:
    settings = Settings.from_env()
    defs = build_definitions(settings)
    logs = LogFolder.of(settings)
    days = logs.days()
    if not days:
        raise SystemExit(f"no log records under {logs.folder}")
    print(f"Collecting {logs.folder}: {len(days)} days of calls, {days[0]} to {days[-1]}")
    timings: dict[str, float] = {}
    failed: list[str] = []
    with DagsterInstance.get() as instance:
        for job, tags in ((collect_and_scrub, day_range(days)), (find_tasks, {})):
            _run(defs, job.name, tags, instance, timings, required=True)
        task_ids = sorted(open_warehouse(settings.warehouse).read("tasks")["task_id"])
        for task_id in task_ids:
            if task_id in instance.get_dynamic_partitions(TASKS.name) and not _run(
                defs, convert_tasks.name, {}, instance, timings, partition_key=task_id
            ):
                failed.append(task_id)
        _run(defs, report.name, {}, instance, timings, required=True)
    _print_results(settings, timings, failed)


def _run(
    defs: Definitions,
    job: str,
    tags: dict,
    instance: DagsterInstance,
    timings: dict[str, float],
    *,
    partition_key: str | None = None,
    required: bool = False,
) -> bool:
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags, partition_key=partition_key, raise_on_error=False
    )
    timings[f"{job} {partition_key or ''}".strip()] = time.perf_counter() - started
    if not result.success and required:
        raise SystemExit(f"the {job} run failed: see the log above, or the run in the Dagster UI")
    return result.success


def _print_results(settings: Settings, timings: dict[str, float], failed: list[str]) -> None:
    warehouse = open_warehouse(settings.warehouse)
    report_rows = warehouse.read("conversion_report")
    print(f"\nResults in {settings.home}")
    print(f"  warehouse: {settings.warehouse}")
    for name, count in warehouse.row_counts().items():
        print(f"    {name:<20} {count:>7} rows")
    for report_file in sorted((settings.home / "reports").glob("*")):
        print(f"  report: {report_file}")
    print("  time per run: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    if failed:
        print(f"  FAILED tasks (their runs are in the Dagster UI): {', '.join(failed)}")
    moved = report_rows[report_rows["replaceable"].astype(bool)]
    print(
        f"\n{len(moved)} of {len(report_rows)} tasks can move to a small model: {moved['share_of_calls'].sum():.0%} of the "
        f"LLM calls, {moved['share_of_tokens'].sum():.0%} of the tokens."
    )
    print("  Dagster UI: make dev, then open http://localhost:3000")


if __name__ == "__main__":
    main()
