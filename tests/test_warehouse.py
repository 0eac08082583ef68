"""The warehouse on both backends, DuckDB and PostgreSQL: the same schemas, partitions replaced atomically, the
questions the steps ask, writes from several processes at once, and a server that is down."""

import multiprocessing
import socket
import threading
import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.warehouse import SCHEMAS, Partition, PostgresWarehouse, frame, open_warehouse

DAY = datetime(2026, 11, 2)


def calls(*days_and_ids: tuple[int, str], text: str = "hi") -> pd.DataFrame:
    return frame("clean_calls", [
        {"call_id": call_id, "called_at": DAY + timedelta(days=day, hours=1), "time_from_file": False,
         "source_file": "a.jsonl", "source_line": i, "turn": 0, "format": "openai", "messages": f'[{{"content": "{text}"}}]',
         "tools": "[]", "response_text": None, "response_tool_calls": "[]", "prompt_tokens": None, "latency_ms": float("nan"),
         "occurrences": 1, "pii_findings": 0}
        for i, (day, call_id) in enumerate(days_and_ids)
    ])


def evaluations(task_id: str, score: float, variants=("zero_shot", "adapter")) -> pd.DataFrame:
    return frame("evaluations", [
        {"task_id": task_id, "variant": variant, "candidate": "tiny", "adapter_version": 1, "calls": 3, "calls_unfit": 0,
         "score": score, "valid_json": float("nan"), "promoted": variant == "adapter", "replaceable": True, "reason": "ok"}
        for variant in variants
    ])


def day(offset: int) -> Partition:
    return Partition(start=DAY + timedelta(days=offset), end=DAY + timedelta(days=offset + 1))


def test_a_table_reads_back_as_written_with_the_schemas_types(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    written = calls((0, "a"), (1, "b"))

    warehouse.write("clean_calls", written)

    read = warehouse.read("clean_calls").sort_values("call_id", ignore_index=True)
    pd.testing.assert_frame_equal(read.astype(SCHEMAS["clean_calls"]), written)
    assert read["response_text"].tolist() == [None, None]  # text as Python strings or None, as DuckDB reads it
    assert str(read["prompt_tokens"].dtype) == "Int64" and read["called_at"].dtype == "datetime64[us]"


def test_a_table_not_written_yet_reads_as_an_empty_frame_of_its_columns(warehouse_url):
    empty = open_warehouse(warehouse_url).read("adapters")
    assert empty.empty and list(empty.columns) == list(SCHEMAS["adapters"])


def test_writing_a_day_or_a_task_replaces_only_its_rows(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    warehouse.write("clean_calls", calls((0, "a"), (1, "b"), (1, "c")))
    warehouse.write("evaluations", pd.concat([evaluations("t1", 0.5), evaluations("t2", 0.6)]), Partition(keys=("t1", "t2")))

    warehouse.write("clean_calls", calls((1, "d")), day(1))
    warehouse.write("evaluations", evaluations("t1", 0.9, variants=("adapter",)), Partition(keys=("t1",)))

    assert sorted(warehouse.read("clean_calls")["call_id"]) == ["a", "d"]
    assert list(warehouse.read("clean_calls", day(0))["call_id"]) == ["a"]
    rows = warehouse.read("evaluations").sort_values(["task_id", "variant"])
    assert list(zip(rows["task_id"], rows["variant"], rows["score"])) == [
        ("t1", "adapter", 0.9), ("t2", "adapter", 0.6), ("t2", "zero_shot", 0.6)]
    assert np.isnan(rows["valid_json"]).all()


def test_a_write_that_fails_half_way_leaves_the_partition_as_it_was(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    warehouse.write("clean_calls", calls((0, "a"), (0, "b")))

    with pytest.raises(Exception):  # a lone surrogate: neither store accepts it, after the old rows are deleted
        warehouse.write("clean_calls", calls((0, "c"), text="broken \ud800"), day(0))

    assert sorted(warehouse.read("clean_calls")["call_id"]) == ["a", "b"]


def test_columns_that_are_not_the_tables_are_an_error(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    with pytest.raises(ValueError, match="are not the table's"):
        warehouse.write("evaluations", evaluations("t1", 0.5).drop(columns=["judge"]), Partition(keys=("t1",)))


def test_one_tasks_calls_come_with_their_signatures_oldest_first(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    warehouse.write("clean_calls", calls((2, "late"), (0, "early"), (1, "other")))
    warehouse.write("task_clusters", frame("task_clusters", {
        "call_id": ["late", "early", "other"], "called_at": [DAY] * 3, "task_id": ["t1", "t1", "t2"],
        "signature": ["sig late", "sig early", "sig other"]}))

    task = warehouse.task_calls("t1")

    assert list(task["call_id"]) == ["early", "late"] and list(task["signature"]) == ["sig early", "sig late"]
    assert list(task.columns) == [*SCHEMAS["clean_calls"], "signature"]


def test_the_embedding_cache_keeps_the_first_vector_of_a_hash(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    warehouse.cache_embeddings({"h1": np.array([1.0, 2.0]), "h2": np.array([3.0, 4.0])})
    warehouse.cache_embeddings({"h1": np.array([9.0, 9.0]), "h3": np.array([5.0, 6.0])})

    found = warehouse.cached_embeddings(["h1", "h3", "h4", "h1"])

    assert set(found) == {"h1", "h3"} and found["h1"].tolist() == [1.0, 2.0] and found["h3"].dtype == np.float32


def test_row_counts_cover_every_table_there_is(warehouse_url):
    warehouse = open_warehouse(warehouse_url)
    warehouse.write("clean_calls", calls((0, "a"), (1, "b")))
    warehouse.cache_embeddings({"h": np.zeros(3)})
    assert warehouse.row_counts() == {"clean_calls": 2, "embedding_cache": 1}


def _write_task_partitions(url: str, task_id: str, rounds: int) -> None:
    warehouse = open_warehouse(url)
    for round_ in range(rounds):
        warehouse.write("evaluations", evaluations(task_id, round_ / 10, ("zero_shot", "few_shot", "adapter")),
                        Partition(keys=(task_id,)))
        warehouse.read("evaluations", Partition(keys=(task_id,)))


def test_processes_writing_their_own_task_partitions_at_once_lose_and_double_nothing(warehouse_url):
    tasks = [f"task-{i}" for i in range(4)]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_task_partitions, args=(warehouse_url, task_id, 5)) for task_id in tasks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert [worker.exitcode for worker in workers] == [0] * len(tasks)  # none died of a lock error
    rows = open_warehouse(warehouse_url).read("evaluations")
    assert sorted(rows.groupby("task_id").size().items()) == [(task_id, 3) for task_id in tasks]
    assert set(rows["score"]) == {0.4}  # every task's last write, whole


def test_postgres_stores_a_nul_character_as_the_replacement_character(postgres_url):
    warehouse = open_warehouse(postgres_url)
    warehouse.write("clean_calls", calls((0, "a"), text="nul \x00 here"))
    assert warehouse.read("clean_calls")["messages"][0] == '[{"content": "nul \ufffd here"}]'


def test_a_postgres_server_that_is_down_is_a_clear_error_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens on it once closed
    with pytest.raises(ConnectionError, match=rf"PostgreSQL server at postgresql://slm:\*\*\*@127.0.0.1:{port}/db cannot be reached"):
        open_warehouse(f"postgresql://slm:secret@127.0.0.1:{port}/db")


def test_a_postgres_server_that_never_answers_is_an_error_after_the_connect_timeout():
    with socket.socket() as silent:  # accepts connections and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        failure = []
        attempt = threading.Thread(target=lambda: failure.append(_connect_error(port)), daemon=True)
        attempt.start()
        attempt.join(timeout=30)
    assert not attempt.is_alive(), "the connection attempt hung"
    assert isinstance(failure[0], ConnectionError) and "timeout" in str(failure[0])


def _connect_error(port: int) -> Exception | None:
    try:
        PostgresWarehouse(f"postgresql://slm@127.0.0.1:{port}/db", connect_timeout_s=1)
    except Exception as error:
        return error
    return None
