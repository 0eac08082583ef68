"""The distributed deployment, on one machine: each part a process of its own, as it would be a machine of its own.

- the Dagster instance on PostgreSQL, with `deploy/dagster.yaml`'s storage and run queue (its Kubernetes run
  launcher and S3 logs aside: runs start as local processes, their logs stay in DAGSTER_HOME);
- `dagster-daemon`, which takes queued runs off the queue within the run limits;
- Celery workers on a Redis broker (`deploy/celery.yaml`), which run the steps of every run (SLM_EXECUTOR=celery);
- a backfill of task partitions through `dagster job backfill`, as a person starts one.

The fan-out benchmark (`bench/fanout.py`) and its test (`tests/test_fanout.py`) run on it; a person can too, to try
the Celery executor on one machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's console scripts: dagster, dagster-daemon, dagster-celery
LOADS_MODEL = "slm/loads-model"
DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class Cluster:
    """Where one deployment keeps its state, and the environment every one of its processes gets."""

    folder: Path
    env: dict[str, str]

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.dagster_home))


def make_cluster(folder: Path, *, dagster_db: str, warehouse: str, broker: str, candidates: Path, config: Path,
                 models_at_once: int | None = None) -> Cluster:
    """A deployment in `folder`: SLM_HOME and DAGSTER_HOME, the instance on the `dagster_db` PostgreSQL database with
    deploy/dagster.yaml's run queue (`models_at_once` replacing its limit on runs that load a model)."""
    home, dagster_home = folder / "home", folder / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(dagster_db, models_at_once)))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery starts `celery` by name
        "DAGSTER_HOME": str(dagster_home),
        "SLM_HOME": str(home),
        "SLM_WAREHOUSE": warehouse,
        "SLM_CANDIDATES": str(candidates),
        "SLM_CONFIG": str(config),
        "SLM_EXECUTOR": "celery",
        "SLM_CELERY_BROKER": broker,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }
    return Cluster(folder, env)


@contextmanager
def databases(server: str) -> Iterator[Callable[[], str]]:
    """New, empty databases on the PostgreSQL server at `server` (a URL), dropped on leaving: each call of what it
    gives is a new database's URL."""
    connection = psycopg2.connect(server)
    connection.autocommit = True
    names: list[str] = []

    def new_database() -> str:
        names.append(f"slm_{uuid.uuid4().hex[:12]}")
        connection.cursor().execute(f"create database {names[-1]}")
        return server.rsplit("/", 1)[0] + f"/{names[-1]}"

    try:
        yield new_database
    finally:
        for name in names:
            connection.cursor().execute(f"drop database {name} with (force)")
        connection.close()


def instance_config(postgres_url: str, models_at_once: int | None = None) -> dict:
    """deploy/dagster.yaml's storage (pointed at `postgres_url`) and run queue, with the queue checked every second
    and no automation: the sensors' runs would compete with the backfill's."""
    deployed = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    url = urlsplit(postgres_url)
    postgres = deployed["storage"]["postgres"]
    postgres["postgres_db"] = {**postgres["postgres_db"], "hostname": url.hostname, "port": url.port or 5432,
                               "username": url.username, "password": url.password or "", "db_name": url.path.lstrip("/")}
    queue = deployed["run_coordinator"]
    queue["config"]["dequeue_interval_seconds"] = 1
    if models_at_once is not None:
        for limit in queue["config"]["tag_concurrency_limits"]:
            if limit["key"] == LOADS_MODEL:
                limit["limit"] = models_at_once
    return {"telemetry": deployed["telemetry"], "storage": deployed["storage"], "run_coordinator": queue,
            "auto_materialize": {"enabled": False, "use_sensors": False}}


@contextmanager
def running(cluster: Cluster, workers: int) -> Iterator[None]:
    """The daemon and `workers` Celery workers (one step at a time each), ready; stopped on leaving, whatever
    happened."""
    with ExitStack() as stack:
        ready = []
        for number in range(1, workers + 1):
            log = cluster.folder / f"worker{number}.log"
            stack.enter_context(_process(
                [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y",
                 str(ROOT / "deploy" / "celery.yaml"), "-n", f"worker{number}", "--", "--concurrency=1"],
                cluster, log))
            ready.append(log)
        stack.enter_context(_process([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                     cluster, cluster.folder / "daemon.log"))
        _wait_for(lambda: all(" ready." in log.read_text() for log in ready), 180, "the Celery workers to start", cluster)
        yield


def backfill(cluster: Cluster, job: str, partitions: list[str], timeout_s: float = 600) -> list[RunRecord]:
    """Backfill `job` over `partitions` and wait for every run to end; its run records, oldest first."""
    subprocess.run(
        [str(BIN / "dagster"), "job", "backfill", "-w", str(ROOT / "workspace.yaml"), "-j", job,
         "--partitions", ",".join(partitions), "--noprompt"],
        cwd=ROOT, env=cluster.env, check=True, capture_output=True, text=True, timeout=timeout_s,
    )
    with cluster.instance() as instance:
        def records() -> list[RunRecord]:
            return instance.get_run_records(RunsFilter(job_name=job), ascending=True)

        _wait_for(lambda: len(records()) == len(partitions) and all(r.dagster_run.status in DONE for r in records()),
                  timeout_s, f"the {job} runs to end", cluster)
        return records()


def most_at_once(records: list[RunRecord]) -> int:
    """The most runs that were running at the same moment."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    running_now = peak = 0
    for _, change in edges:
        running_now += change
        peak = max(peak, running_now)
    return peak


def logs(cluster: Cluster) -> str:
    """The last lines of every process's log, to read when something went wrong."""
    return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                     for log in sorted(cluster.folder.glob("*.log")))


@contextmanager
def _process(command: list[str], cluster: Cluster, log: Path) -> Iterator[subprocess.Popen]:
    """A process in a session of its own, so that stopping it stops everything it started (pool workers, code
    servers, runs)."""
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=cluster.env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with suppress(ProcessLookupError):  # what is left of the session: a stuck pool worker, a run
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_for(condition, timeout_s: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}\n{logs(cluster)}")
        time.sleep(1)
