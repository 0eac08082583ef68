"""Steps 4–6 fanned out: a backfill of task partitions one run at a time on one Celery worker (the baseline, what a
machine that takes one model at a time does) beside two runs at once on two workers, on the DuckDB warehouse and on
PostgreSQL, in one run. Needs a PostgreSQL server and a Redis server: `make test` starts them with
tests/services.sh, which runs any command beside them.

    tests/services.sh .venv/bin/python bench/fanout.py [--tasks 4] [--repeats 1]

Each configuration is a fresh deployment of `orchestration/cluster.py` (a Dagster instance on PostgreSQL with
deploy/dagster.yaml's run queue, its daemon, Celery workers on Redis, SLM_EXECUTOR=celery), with its own SLM_HOME,
warehouse and instance, on the tiny model and tiny tasks of `demo/tiny.py`: what is measured is the machinery
around the model (queueing, launching, steps on workers, warehouse writes), not training. Wall time runs from the
`dagster job backfill` call to the end of the last run; workers are started and ready before it, and import the
model libraries on their first step, inside the measured time. The row counts of picks, adapters and evaluations
must match across configurations, and every run must succeed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestration.cluster import backfill, databases, logs, make_cluster, most_at_once, running  # noqa: E402
from demo.tiny import write_tiny_config, write_tiny_model, write_tiny_tasks  # noqa: E402
from pipeline.warehouse import open_warehouse  # noqa: E402

BASELINE = "1 run at a time, 1 worker"
CONFIGS = {BASELINE: (1, 1), "2 runs at once, 2 workers": (2, 2)}  # name → (workers, runs that load a model at once)
TABLES = ("picks", "adapters", "evaluations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get("SLM_TEST_POSTGRES"), help="a server URL (default: $SLM_TEST_POSTGRES)")
    parser.add_argument("--redis", default=os.environ.get("SLM_TEST_REDIS"), help="a broker URL (default: $SLM_TEST_REDIS)")
    args = parser.parse_args()
    if not args.postgres or not args.redis:
        raise SystemExit("needs a PostgreSQL and a Redis server: run it as `tests/services.sh .venv/bin/python bench/fanout.py`")

    with tempfile.TemporaryDirectory() as tmp, databases(args.postgres) as new_database:
        folder = Path(tmp)
        candidates, config = write_tiny_config(folder, write_tiny_model(folder / "tiny"))
        results: dict[tuple[str, str], list[float]] = {}
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for repeat in range(args.repeats):
            for backend in ("duckdb", "postgres"):
                for name, (workers, at_once) in CONFIGS.items():
                    where = folder / f"{backend}-{workers}-{repeat}"
                    warehouse = str(where / "warehouse.duckdb") if backend == "duckdb" else new_database()
                    where.mkdir()
                    cluster = make_cluster(where, dagster_db=new_database(), warehouse=warehouse, broker=args.redis,
                                           candidates=candidates, config=config, models_at_once=at_once)
                    seconds, peak, rows = run(cluster, warehouse, args.tasks, workers)
                    results.setdefault((backend, name), []).append(seconds)
                    counts[(backend, name)] = rows
                    print(f"  {backend:<8} {name:<26} {seconds:6.1f} s, at most {peak} runs at once, rows {rows}",
                          flush=True)
        report(results, counts, args)


def run(cluster, warehouse: str, tasks: int, workers: int) -> tuple[float, int, dict[str, int]]:
    task_ids = write_tiny_tasks(open_warehouse(warehouse), tasks)
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("task", task_ids)
    with running(cluster, workers):
        started = time.time()
        runs = backfill(cluster, "convert_tasks", task_ids)
    if any(r.dagster_run.status.value != "SUCCESS" for r in runs):
        raise SystemExit(f"a run failed\n{logs(cluster)}")
    counted = open_warehouse(warehouse).row_counts()
    return max(r.end_time for r in runs) - started, most_at_once(runs), {t: counted.get(t, 0) for t in TABLES}


def report(results: dict, counts: dict, args) -> None:
    print(f"\nSteps 4–6 for {args.tasks} tiny task partitions, median of {args.repeats} backfill(s), wall time:")
    print(f"| warehouse | configuration | wall s | speed-up over {BASELINE} |\n|---|---|---|---|")
    for backend in ("duckdb", "postgres"):
        baseline = statistics.median(results[(backend, BASELINE)])
        for name in CONFIGS:
            seconds = statistics.median(results[(backend, name)])
            print(f"| {backend} | {name} | {seconds:.0f} | {baseline / seconds:.2f}x |")
    same = len({tuple(sorted(c.items())) for c in counts.values()}) == 1
    print(f"\nrow counts ({', '.join(TABLES)}) the same in every configuration: {'yes' if same else 'NO'} "
          f"{next(iter(counts.values()))}")
    if not same:
        raise SystemExit(f"row counts differ: {counts}")


if __name__ == "__main__":
    main()
