"""Steps 4–6 fan out: a backfill of task partitions runs them at once on Celery workers, through a Dagster instance
on PostgreSQL, on either warehouse, and loses or doubles nothing; a training killed half-way leaves no version."""

import json
import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

from demo.tiny import write_tiny_config, write_tiny_tasks
from finetune.adapters import STAGING, _register, registry, train_task_adapter, versions
from finetune.models import load_tokenizer
from finetune.prompts import adapter_examples
from orchestration.cluster import backfill, logs, make_cluster, most_at_once, running
from pipeline.context import InputRule
from pipeline.settings import TrainConfig
from pipeline.warehouse import open_warehouse
from test_finetune import QUEUES, call


def test_a_backfill_of_task_partitions_runs_them_at_once_on_two_celery_workers_and_loses_nothing(
    tmp_path, tiny_checkpoint, warehouse_url, postgres_databases, redis_url
):
    candidates, config = write_tiny_config(tmp_path, tiny_checkpoint)
    cluster = make_cluster(tmp_path / "cluster", dagster_db=postgres_databases(), warehouse=warehouse_url,
                           broker=redis_url, candidates=candidates, config=config)
    task_ids = write_tiny_tasks(open_warehouse(warehouse_url), tasks=3)
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("task", task_ids)

    with running(cluster, workers=2):
        runs = backfill(cluster, "convert_tasks", task_ids)

    assert [run.dagster_run.status.value for run in runs] == ["SUCCESS"] * 3, logs(cluster)
    assert most_at_once(runs) == 2  # deploy/dagster.yaml's limit on runs that load a model
    warehouse = open_warehouse(warehouse_url)
    adapters, evaluations = warehouse.read("adapters"), warehouse.read("evaluations")
    assert sorted(zip(adapters["task_id"], adapters["version"])) == [(task_id, 1) for task_id in task_ids]
    assert sorted(evaluations.groupby("task_id")["variant"].apply(sorted).items()) == [
        (task_id, ["adapter", "few_shot", "zero_shot"]) for task_id in task_ids]
    assert len(warehouse.read("picks")) == 3
    assert all(versions(cluster.folder / "home" / "adapters", task_id) == [1] for task_id in task_ids)
    with cluster.instance() as instance:
        on = {event.dagster_event.event_specific_data.metadata["Celery worker"].value
              for run in runs for event in instance.all_logs(run.dagster_run.run_id)
              if event.dagster_event and event.dagster_event.is_engine_event
              and "Celery worker" in (event.dagster_event.event_specific_data.metadata or {})}
    assert {worker.split("@")[0] for worker in on} == {"worker1", "worker2"}  # the steps ran on both workers


def _examples(checkpoint):
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(12)]
    return adapter_examples(load_tokenizer(checkpoint), calls, InputRule(), 2048)


def _train_until_killed(root, checkpoint, progress):
    train_task_adapter("task-001", "tiny", checkpoint, _examples(checkpoint), InputRule(), root,
                       TrainConfig(min_steps=10_000, max_steps=10_000), on_log=lambda *_: progress.set())


def test_a_training_killed_half_way_leaves_no_version_and_a_rerun_registers_a_whole_one(tmp_path, tiny_checkpoint):
    context = multiprocessing.get_context("spawn")
    progress = context.Event()
    worker = context.Process(target=_train_until_killed, args=(tmp_path, tiny_checkpoint, progress))
    worker.start()
    assert progress.wait(timeout=180), "training never logged a step"
    os.kill(worker.pid, signal.SIGKILL)  # as a node lost mid-step
    worker.join()

    assert versions(tmp_path, "task-001") == [] and registry(tmp_path, "task-001").empty
    assert [p.name.startswith(STAGING) for p in (tmp_path / "task-001").iterdir()] == [True]  # only its own folder

    manifest = train_task_adapter("task-001", "tiny", tiny_checkpoint, _examples(tiny_checkpoint), InputRule(), tmp_path,
                                  TrainConfig(min_steps=2, max_steps=2))
    assert manifest["version"] == 1 and registry(tmp_path, "task-001")["version"].tolist() == [1]
    assert (tmp_path / "task-001" / "v1" / "adapter_model.safetensors").exists()


def _register_one(task_folder, number, start):
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=task_folder))
    (staging / "run").write_text(str(number))
    start.wait()
    _register(staging, task_folder, {"task_id": "task-001"})


def test_runs_that_register_adapters_at_once_each_get_a_version_of_their_own(tmp_path):
    """Registering is a rename, and the rename is the allocation: runs that finish together never share a number."""
    task_folder = tmp_path / "task-001"
    task_folder.mkdir()
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    workers = [context.Process(target=_register_one, args=(task_folder, n, start)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0] * 4
    assert versions(tmp_path, "task-001") == [1, 2, 3, 4]
    runs = {(task_folder / f"v{v}" / "run").read_text() for v in range(1, 5)}
    assert runs == {"0", "1", "2", "3"}  # each run's own files, under a number of its own
    assert all(json.loads((task_folder / f"v{v}" / "manifest.json").read_text())["version"] == v for v in range(1, 5))
