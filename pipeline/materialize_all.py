"""Materialize every asset for the logs at hand (what `make demo` runs), then say where the results are."""

from __future__ import annotations

import duckdb
from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipeline.definitions import defs
from pipeline.jobs import collect_and_scrub, find_tasks
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
    with DagsterInstance.get() as instance:
        for job, tags in ((collect_and_scrub, days_range), (find_tasks, {})):
            result = defs.resolve_job_def(job.name).execute_in_process(instance=instance, tags=tags)
            if not result.success:
                raise SystemExit(f"the {job.name} run failed: see the log above, or the run in the Dagster UI")
    with duckdb.connect(settings.warehouse, read_only=True) as warehouse:
        tables = warehouse.execute("select table_name from information_schema.tables order by 1").fetchall()
        counts = {name: warehouse.execute(f'select count(*) from "{name}"').fetchone()[0] for (name,) in tables}
    print(f"\nResults in {settings.home}")
    print(f"  warehouse: {settings.warehouse}")
    for name, count in counts.items():
        print(f"    {name:<20} {count:>7} rows")
    for report in sorted((settings.home / "reports").glob("*")):
        print(f"  report: {report}")
    print("  Dagster UI: make dev, then open http://localhost:3000")


if __name__ == "__main__":
    main()
