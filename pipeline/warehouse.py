"""The warehouse: every table the steps read and write, its columns, how it is partitioned, and all the SQL on it.

The steps see a `Warehouse`: write a table or one partition of it, read it back, and the few questions the steps
ask (one task's calls, the embedding cache, the row counts). `DuckDBWarehouse` is the embedded backend, one file;
`PostgresWarehouse` is a PostgreSQL database that runs on many machines can write at once; both hold the same
schemas. Dagster's I/O manager (`orchestration/io_manager.py`) stores every tabular asset through it, so no step
writes SQL of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extras

CALLS = {
    "call_id": "string",
    "called_at": "datetime64[us]",
    "time_from_file": "bool",
    "source_file": "string",
    "source_line": "int64",
    "turn": "int64",
    "format": "string",
    "session_id": "string",
    "workload": "string",
    "model": "string",
    "messages": "string",
    "tools": "string",
    "response_text": "string",
    "response_tool_calls": "string",
    "finish_reason": "string",
    "prompt_tokens": "Int64",
    "completion_tokens": "Int64",
    "latency_ms": "float64",
    "cost_usd": "float64",
    "occurrences": "int64",
    "content_hash": "string",
}
QUARANTINE = {
    "called_at": "datetime64[us]",
    "step": "string",
    "source_file": "string",
    "source_line": "int64",
    "reason": "string",
    "excerpt": "string",
}
TASKS = {
    "task_id": "string",
    "title": "string",  # what people read it by: `get_user_details call`, `reply: user / provide`
    "keywords": "string",  # JSON list
    "kind": "string",  # the reply kind of its calls: `tool:<name>`, `json` or `text`
    "calls": "int64",
    "share_of_calls": "float64",
    "tokens": "int64",
    "share_of_tokens": "float64",
    "spend_usd": "float64",
    "share_of_spend": "float64",
    "reply_types": "string",  # JSON {type: count}
    "tools": "string",  # JSON {tool: count} of the tools the replies call
    "formed": "string",  # how step 3 formed it, in words: one tool, a split and its evidence, a label set
    "example": "string",  # the most central call's signature, placeholders and id-like tokens masked
    "example_call_id": "string",
    "matched_from": "string",  # the previous cycle's task id this task continues; empty for a new task
    "similarity": "float64",  # centroid cosine to that previous task
    "lineage": "string",  # "split from task-003", "merged from task-002, task-005"; empty when neither
    "centroid": "string",  # JSON list: what the next cycle matches against
}
PICKS = {
    "task_id": "string",
    "candidate": "string",
    "parameters": "int64",
    "context_length": "int64",
    "serving_usd_per_1m_tokens": "float64",
    "input_p50_full": "int64",  # prompt tokens as logged
    "input_p50": "int64",  # as the adapter reads them: pruned, whole conversation
    "input_p95": "int64",
    "output_p50": "int64",
    "output_p95": "int64",
    "eligible": "bool",  # profiled and able to serve the task
    "zero_shot": "float64",  # mean score on the sample, NaN where not scored
    "few_shot": "float64",
    "calls_scored": "int64",
    "tokens_per_second": "float64",  # generation here, few-shot
    "context_window": "int64",  # messages kept, 0 = all; on the chosen row
    "window_scores": "string",  # JSON: window → few-shot score
    "window_coverage": "string",  # JSON: window → share of tool-call replies whose copied values it keeps
    "calls_unfit": "int64",  # calls that do not fit the context in that window: they stay with the LLM
    "chosen": "bool",
    "reason": "string",  # why not eligible, why chosen, why the task was skipped
}
ADAPTERS = {
    "task_id": "string",
    "version": "int64",
    "candidate": "string",
    "base_sha256": "string",
    "data_sha256": "string",
    "train_calls": "int64",
    "calls_unfit": "int64",  # training calls too long to train on after the input rule
    "input_rule": "string",  # what the pruning and the context window do, in words
    "prompt_tokens_full": "float64",  # mean prompt tokens per training example as logged
    "prompt_tokens": "float64",  # and as trained on
    "steps": "int64",
    "stopped": "string",  # why training ended: converged, token budget, or the step limit
    "final_loss": "float64",
    "loss_curve": "string",  # JSON list, one loss per step
    "seconds": "float64",
    "tokens_per_second": "float64",
    "peak_memory_mb": "float64",
    "hyperparameters": "string",  # JSON
    "path": "string",
    "trained_at": "datetime64[us]",
}
EVALUATIONS = {
    "task_id": "string",
    "variant": "string",  # zero_shot, few_shot, or adapter
    "candidate": "string",
    "adapter_version": "int64",  # 0 for the base model
    "calls": "int64",
    "calls_unfit": "int64",  # held-out calls too long for the context after the input rule: not scored, LLM's
    "prompt_tokens": "float64",  # mean prompt tokens per call as this variant reads them
    "input_rule": "string",  # the adapter's pruning and window; the window alone for the base model
    "score": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "valid_json": "float64",  # the kind's metrics, NaN where they do not apply
    "name_match": "float64",
    "exact_args": "float64",
    "field_f1": "float64",
    "exact_match": "float64",
    "similarity": "float64",
    "rouge_l": "float64",
    "judge": "float64",  # the LLM judge's rating of text replies, when one is configured (pipeline/judge.py)
    "seconds_per_call": "float64",
    "tokens_per_second": "float64",
    "promoted": "bool",  # this row's adapter serves the task after the evaluation
    "replaceable": "bool",  # the task's decision, on every row of the task
    "reason": "string",
}
REPORT = {
    "task_id": "string",
    "title": "string",
    "calls": "int64",
    "share_of_calls": "float64",
    "share_of_tokens": "float64",
    "spend_usd": "float64",
    "candidate": "string",
    "zero_shot": "float64",
    "few_shot": "float64",
    "fine_tuned": "float64",  # the promoted adapter's score
    "ci_low": "float64",
    "ci_high": "float64",
    "adapter_version": "int64",  # 0: none promoted
    "replaceable": "bool",
    "reason": "string",
    "slm_usd_per_1m_tokens": "float64",
    "prompt_tokens_logged": "float64",  # mean held-out prompt tokens as logged (in the window)
    "prompt_tokens": "float64",  # and as the promoted adapter reads them
    "calls_unfit": "int64",  # held-out calls that do not fit the adapter's context: they stay with the LLM
    "input_rule": "string",  # the promoted adapter's pruning and context window
}

TASK_ROUTER = {  # step 3's router, on every fifth call of each task held out from its training
    "task_id": "string",
    "held_out": "int64",
    "routed": "int64",  # held-out calls the router gave a task (the rest: unknown, to the LLM)
    "agreeing": "int64",  # routed to step 3's own task
    "routed_elsewhere": "int64",
}
LIVE_AGREEMENT = {  # the gateway's live pairs, LLM and adapter answering the same call, scored by step 6's metrics
    "task_id": "string",
    "adapter_version": "int64",
    "kind": "string",  # tool, json or text: which metrics
    "pairs": "int64",  # scored, the latest `serve.live_window` at most
    "agreement": "float64",  # mean score of the adapter's answers against the LLM's
    "ci_low": "float64",
    "ci_high": "float64",
    "fallbacks": "int64",  # adapter answers the gateway did not return: invalid, failed or too slow
    "first_at": "datetime64[us]",
    "last_at": "datetime64[us]",
}
SERVING_MODES = {  # what the gateway does with each task's calls
    "task_id": "string",
    "mode": "string",  # llm, shadow, canary:<share> or slm
    "adapter_version": "int64",  # 0: none promoted
    "offline_score": "float64",  # step 6's held-out score of that adapter
    "live_pairs": "int64",
    "live_agreement": "float64",
    "reason": "string",
    "set_by": "string",  # rule, hand (the update_serving job's config) or configuration (serve.modes)
    "changed_at": "datetime64[us]",  # when the task last changed mode
}

# Table → its columns. Every asset that is a table is named here; `embedding_cache` is the warehouse's own.
SCHEMAS: dict[str, dict[str, str]] = {
    "raw_calls": CALLS,  # step 1: one row per call, exact duplicates collapsed, not yet scrubbed
    "raw_quarantine": QUARANTINE,  # step 1: records that could not become calls, raw excerpts
    "clean_calls": {k: v for k, v in CALLS.items() if k != "content_hash"} | {"pii_findings": "int64"},
    "pii_audit": {"call_id": "string", "called_at": "datetime64[us]", "entity_type": "string", "recognizer": "string",
                  "count": "int64"},
    "pii_vault": {"call_id": "string", "called_at": "datetime64[us]", "sealed": "string"},
    "quarantine": QUARANTINE,  # step 2: every step's quarantined records, excerpts scrubbed
    "task_clusters": {"call_id": "string", "called_at": "datetime64[us]", "task_id": "string", "signature": "string",
                      "reason": "string"},  # why a call is `unassigned`; empty for the others
    "tasks": TASKS,
    "picks": PICKS,
    "adapters": ADAPTERS,
    "evaluations": EVALUATIONS,
    "conversion_report": REPORT,
    "task_router": TASK_ROUTER,
    "live_agreement": LIVE_AGREEMENT,
    "serving_modes": SERVING_MODES,
}
# Partitioned tables → the column their partitions are rows of: days of call time, or tasks.
PARTITIONED_BY = {
    **{table: "called_at" for table in ("raw_calls", "raw_quarantine", "clean_calls", "pii_audit", "pii_vault", "quarantine")},
    **{table: "task_id" for table in ("picks", "adapters", "evaluations")},
}


def typed_frame(rows: Sequence[dict] | dict | None, columns: dict[str, str]) -> pd.DataFrame:
    """Rows (or a dict of columns) as a frame with fixed column types, so that even an empty one makes a well-typed
    table."""
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def frame(table: str, rows: Sequence[dict] | dict | None = None) -> pd.DataFrame:
    """Rows (or a dict of columns) of `table`, typed by its schema."""
    return typed_frame(rows, SCHEMAS[table])


@dataclass(frozen=True)
class Partition:
    """Some partitions of a partitioned table: a time range [start, end) of its time column, or keys of its key
    column."""

    start: datetime | None = None
    end: datetime | None = None
    keys: tuple[str, ...] = ()


class Warehouse(Protocol):
    def write(self, table: str, rows: pd.DataFrame, partition: Partition | None = None) -> None:
        """Replace the table, or only the rows of `partition`, with `rows`, atomically."""

    def read(self, table: str, partition: Partition | None = None) -> pd.DataFrame:
        """The table, or the rows of `partition`; an empty frame of its schema where it does not exist yet."""

    def task_calls(self, task_id: str) -> pd.DataFrame:
        """One task's clean calls with their signatures, oldest first: what steps 4–6 work from."""

    def cached_embeddings(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The embedding cache's vectors for those of `text_hashes` it holds."""

    def cache_embeddings(self, embeddings: dict[str, np.ndarray]) -> None:
        """Add text hash → vector pairs to the embedding cache (a hash already there keeps its vector)."""

    def row_counts(self) -> dict[str, int]:
        """Rows per table, for every table there is."""


class DuckDBWarehouse:
    """The warehouse in one DuckDB file. DuckDB lets one process write at a time, so a connection that finds the
    file locked by another run waits and tries again, for up to `lock_wait_s`."""

    def __init__(self, path: str, lock_wait_s: float = 120.0):
        self.path = path
        self.lock_wait_s = lock_wait_s

    def write(self, table: str, rows: pd.DataFrame, partition: Partition | None = None) -> None:
        schema = SCHEMAS[table]
        if list(rows.columns) != list(schema):
            raise ValueError(f"{table}: columns {list(rows.columns)} are not the table's {list(schema)}")
        rows = rows.astype(schema)
        with self._connect() as connection:
            connection.register("rows", rows)
            connection.begin()
            if partition is None:
                connection.execute(f'create or replace table "{table}" as select * from rows')
            else:
                connection.execute(f'create table if not exists "{table}" as select * from rows limit 0')
                self._check_columns(connection, table)
                where, parameters = _where(PARTITIONED_BY[table], partition)
                connection.execute(f'delete from "{table}" where {where}', parameters)
                connection.execute(f'insert into "{table}" select * from rows')
            connection.commit()

    def read(self, table: str, partition: Partition | None = None) -> pd.DataFrame:
        with self._connect() as connection:
            if not self._exists(connection, table):
                return frame(table)
            if partition is None:
                return connection.execute(f'select * from "{table}"').df()
            where, parameters = _where(PARTITIONED_BY[table], partition)
            return connection.execute(f'select * from "{table}" where {where}', parameters).df()

    def task_calls(self, task_id: str) -> pd.DataFrame:
        with self._connect() as connection:
            return connection.execute(
                "select c.*, t.signature from clean_calls c join task_clusters t using (call_id) "
                "where t.task_id = ? order by c.called_at, c.call_id",
                [task_id],
            ).df()

    def cached_embeddings(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = pd.DataFrame({"text_hash": list(dict.fromkeys(text_hashes))})
        with self._connect() as connection:
            self._create_embedding_cache(connection)
            connection.register("wanted", wanted)
            found = connection.execute(
                "select c.text_hash, c.embedding from embedding_cache c join wanted w using (text_hash)"
            ).fetchall()
        return {text_hash: np.asarray(vector, dtype=np.float32) for text_hash, vector in found}

    def cache_embeddings(self, embeddings: dict[str, np.ndarray]) -> None:
        rows = pd.DataFrame({"text_hash": list(embeddings), "embedding": [np.asarray(v).tolist() for v in embeddings.values()]})
        with self._connect() as connection:
            self._create_embedding_cache(connection)
            connection.register("rows", rows)
            connection.execute("insert or ignore into embedding_cache select * from rows")

    def row_counts(self) -> dict[str, int]:
        with self._connect() as connection:
            names = [name for (name,) in connection.execute(
                "select table_name from information_schema.tables order by 1").fetchall()]
            return {name: connection.execute(f'select count(*) from "{name}"').fetchone()[0] for name in names}

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_wait_s
        pause = 0.1
        while True:
            try:
                connection = duckdb.connect(self.path)
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
        try:
            yield connection
        finally:
            connection.close()

    @staticmethod
    def _exists(connection: duckdb.DuckDBPyConnection, table: str) -> bool:
        return bool(connection.execute(
            "select count(*) from information_schema.tables where table_name = ?", [table]).fetchone()[0])

    @staticmethod
    def _check_columns(connection: duckdb.DuckDBPyConnection, table: str) -> None:
        stored = [name for (name,) in connection.execute(
            "select column_name from information_schema.columns where table_name = ? order by ordinal_position",
            [table]).fetchall()]
        if stored != list(SCHEMAS[table]):
            raise ValueError(f"the warehouse's {table} has the columns of an older version ({', '.join(stored)}); "
                             f"drop that table, or start from a fresh SLM_HOME")

    @staticmethod
    def _create_embedding_cache(connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute("create table if not exists embedding_cache (text_hash varchar primary key, embedding float[])")


# pandas type → PostgreSQL column type
POSTGRES_TYPES = {"string": "text", "datetime64[us]": "timestamp", "bool": "boolean", "int64": "bigint",
                  "Int64": "bigint", "float64": "double precision"}


class PostgresWarehouse:
    """The warehouse in a PostgreSQL database (`postgresql://user:password@host:port/db`, libpq's parameters allowed
    in the query). Each write is one transaction that holds the table's advisory lock, so two runs writing the same
    table queue for the moment of the write, and a reader sees the old rows or the new ones, never a mix. A server
    that does not answer is an error after the URL's `connect_timeout` (default `connect_timeout_s`), at start-up:
    the constructor connects once."""

    def __init__(self, url: str, connect_timeout_s: float = 10.0):
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        with self._connect():
            pass

    def write(self, table: str, rows: pd.DataFrame, partition: Partition | None = None) -> None:
        schema = SCHEMAS[table]
        if list(rows.columns) != list(schema):
            raise ValueError(f"{table}: columns {list(rows.columns)} are not the table's {list(schema)}")
        values = _python_values(rows.astype(schema))
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"slm.{table}"])
            stored = self._columns(cursor, table)
            if stored and stored != list(schema):
                if partition is not None:
                    raise ValueError(f"the warehouse's {table} has the columns of an older version "
                                     f"({', '.join(stored)}); drop that table, or start from a fresh database")
                cursor.execute(f'drop table "{table}"')
                stored = []
            if not stored:
                columns = ", ".join(f'"{name}" {POSTGRES_TYPES[kind]}' for name, kind in schema.items())
                cursor.execute(f'create table "{table}" ({columns})')
            if partition is None:
                cursor.execute(f'delete from "{table}"')
            else:
                where, parameters = _postgres_where(PARTITIONED_BY[table], partition)
                cursor.execute(f'delete from "{table}" where {where}', parameters)
            psycopg2.extras.execute_values(cursor, f'insert into "{table}" values %s', values, page_size=500)

    def read(self, table: str, partition: Partition | None = None) -> pd.DataFrame:
        with self._connect() as connection, connection.cursor() as cursor:
            if not self._columns(cursor, table):
                return frame(table)
            if partition is None:
                cursor.execute(f'select * from "{table}"')
            else:
                where, parameters = _postgres_where(PARTITIONED_BY[table], partition)
                cursor.execute(f'select * from "{table}" where {where}', parameters)
            return _frame_of(cursor, SCHEMAS[table])

    def task_calls(self, task_id: str) -> pd.DataFrame:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                "select c.*, t.signature from clean_calls c join task_clusters t using (call_id) "
                "where t.task_id = %s order by c.called_at, c.call_id",
                [task_id],
            )
            return _frame_of(cursor, SCHEMAS["clean_calls"] | {"signature": "string"})

    def cached_embeddings(self, text_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        with self._connect() as connection, connection.cursor() as cursor:
            self._create_embedding_cache(cursor)
            cursor.execute("select text_hash, embedding from embedding_cache where text_hash = any(%s)",
                           [list(dict.fromkeys(text_hashes))])
            found = cursor.fetchall()
        return {text_hash: np.asarray(vector, dtype=np.float32) for text_hash, vector in found}

    def cache_embeddings(self, embeddings: dict[str, np.ndarray]) -> None:
        values = [(text_hash, np.asarray(vector, dtype=np.float32).tolist()) for text_hash, vector in embeddings.items()]
        with self._connect() as connection, connection.cursor() as cursor:
            self._create_embedding_cache(cursor)
            psycopg2.extras.execute_values(
                cursor, "insert into embedding_cache values %s on conflict (text_hash) do nothing", values, page_size=500)

    def row_counts(self) -> dict[str, int]:
        with self._connect() as connection, connection.cursor() as cursor:
            cursor.execute("select table_name from information_schema.tables where table_schema = current_schema() "
                           "order by 1")
            counts = {}
            for (name,) in cursor.fetchall():
                cursor.execute(f'select count(*) from "{name}"')
                counts[name] = cursor.fetchone()[0]
            return counts

    @contextmanager
    def _connect(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection whose block is one transaction: committed at its end, rolled back on an error."""
        parameters = {} if "connect_timeout" in self.url else {"connect_timeout": max(1, round(self.connect_timeout_s))}
        try:
            connection = psycopg2.connect(self.url, **parameters)
        except psycopg2.OperationalError as error:
            reason = " ".join(str(error).split())
            raise ConnectionError(f"the warehouse's PostgreSQL server at {_without_password(self.url)} cannot be "
                                  f"reached: {reason}") from error
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    @staticmethod
    def _columns(cursor, table: str) -> list[str]:
        cursor.execute("select column_name from information_schema.columns where table_schema = current_schema() "
                       "and table_name = %s order by ordinal_position", [table])
        return [name for (name,) in cursor.fetchall()]

    @staticmethod
    def _create_embedding_cache(cursor) -> None:
        cursor.execute("create table if not exists embedding_cache (text_hash text primary key, embedding real[])")


def open_warehouse(url: str) -> Warehouse:
    """The warehouse at `url`: a PostgreSQL URL (`postgresql://...`), or else a DuckDB file's path."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresWarehouse(url)
    return DuckDBWarehouse(url)


def _where(column: str, partition: Partition) -> tuple[str, list]:
    if partition.keys:
        return f'"{column}" in (select unnest(?))', [list(partition.keys)]
    return f'"{column}" >= ? and "{column}" < ?', [partition.start, partition.end]


def _postgres_where(column: str, partition: Partition) -> tuple[str, list]:
    if partition.keys:
        return f'"{column}" = any(%s)', [list(partition.keys)]
    return f'"{column}" >= %s and "{column}" < %s', [partition.start, partition.end]


def _python_values(rows: pd.DataFrame) -> list[tuple]:
    """Rows as tuples of plain Python values, missing ones as None. PostgreSQL's text cannot hold NUL, so a NUL
    character is stored as U+FFFD, as step 1 does with lone surrogates."""
    def plain(value):
        if value is None or value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, str):
            return value.replace("\x00", "\ufffd")
        if isinstance(value, np.generic):
            return value.item()
        return value

    return [tuple(plain(value) for value in row) for row in rows.astype(object).itertuples(index=False, name=None)]


def _frame_of(cursor, columns: dict[str, str]) -> pd.DataFrame:
    """The cursor's rows, typed as DuckDB's reads are: the schema's types, text as Python strings or None."""
    rows = pd.DataFrame(cursor.fetchall(), columns=[d.name for d in cursor.description])
    return rows.astype({name: object if kind == "string" else kind for name, kind in columns.items()})


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
