"""Materialize every asset for the logs at hand (what `make demo` runs), then say where the results are.

Steps 1–3 run once over all days; steps 4–6 run once per task, so a task that fails is reported and the others go on;
the report comes last.
"""

from __future__ import annotations

import time

import duckdb
from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipeline.definitions import defs
from pipeline.jobs import collect_and_scrub, convert_tasks, find_tasks, report
from pipeline.partitions import tasks as task_partitions
from pipeline.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    logs = defs.resources["logs"]
    collection = logs.collect()
    days = sorted({f"{t:%Y-%m-%d}" for t in [*collection.calls["called_at"], *collection.quarantine["called_at"]]})
    if not days:
        raise SystemExit(f"no log records under {logs.folder()}")
    print(f"Collecting {logs.folder()}: {len(days)} days of calls, {days[0]} to {days[-1]}")
    days_range = {ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]}
    timings: dict[str, float] = {}
    failed: list[str] = []
    with DagsterInstance.get() as instance:
        for job, tags in ((collect_and_scrub, days_range), (find_tasks, {})):
            _run(job.name, tags, instance, timings, required=True)
        with duckdb.connect(settings.warehouse, read_only=True) as warehouse:
            task_ids = [t for (t,) in warehouse.execute("select task_id from tasks order by task_id").fetchall()]
        for task_id in task_ids:
            if task_id in instance.get_dynamic_partitions(task_partitions.name) and not _run(
                convert_tasks.name, {}, instance, timings, partition_key=task_id
            ):
                failed.append(task_id)
        _run(report.name, {}, instance, timings, required=True)
    _print_results(settings, timings, failed)


def _run(job: str, tags: dict, instance: DagsterInstance, timings: dict[str, float], *, partition_key: str | None = None,
         required: bool = False) -> bool:
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags, partition_key=partition_key,
                                                          raise_on_error=False)
    timings[f"{job} {partition_key or ''}".strip()] = time.perf_counter() - started
    if not result.success and required:
        raise SystemExit(f"the {job} run failed: see the log above, or the run in the Dagster UI")
    return result.success


def _print_results(settings: Settings, timings: dict[str, float], failed: list[str]) -> None:
    with duckdb.connect(settings.warehouse, read_only=True) as warehouse:
        tables = warehouse.execute("select table_name from information_schema.tables order by 1").fetchall()
        counts = {name: warehouse.execute(f'select count(*) from "{name}"').fetchone()[0] for (name,) in tables}
        headline = warehouse.execute(
            "select count(*), count(*) filter (where replaceable), coalesce(sum(share_of_calls) filter (where replaceable), 0), "
            "coalesce(sum(share_of_tokens) filter (where replaceable), 0) from conversion_report"
        ).fetchone()
    print(f"\nResults in {settings.home}")
    print(f"  warehouse: {settings.warehouse}")
    for name, count in counts.items():
        print(f"    {name:<20} {count:>7} rows")
    for report_file in sorted((settings.home / "reports").glob("*")):
        print(f"  report: {report_file}")
    print("  time per run: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    if failed:
        print(f"  FAILED tasks (their runs are in the Dagster UI): {', '.join(failed)}")
    tasks, replaceable, calls, tokens = headline
    print(f"\n{replaceable} of {tasks} tasks can move to a small model: {calls:.0%} of the LLM calls, {tokens:.0%} of the tokens.")
    print("  Dagster UI: make dev, then open http://localhost:3000")


if __name__ == "__main__":
    main()
