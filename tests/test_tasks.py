"""Step 3 around the clustering: signatures, the embedding cache, task descriptions, ids stable across cycles."""

import json
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline.settings import ClusterConfig
from pipeline.warehouse import DuckDBWarehouse, frame
from pipeline.tasks import CHARS_PER_TOKEN, NOISE, embed, find_tasks, reply_type, signature_embeddings, task_signature, usage

ROUTE = [{"id": "c", "name": "route_ticket", "arguments": {"queue": "billing"}}]


def clean_call(i: int, user: str, *, system: str = "Route tickets.", tool_calls=None, reply: str | None = None) -> dict:
    return {
        "call_id": f"c{i}", "called_at": datetime(2026, 11, 3), "time_from_file": False, "source_file": "a.jsonl",
        "source_line": i, "turn": 0, "format": "request_response", "session_id": None, "workload": None, "model": "m",
        "messages": json.dumps([{"role": "system", "content": system}, {"role": "user", "content": user}]),
        "tools": json.dumps([{"type": "function", "function": {"name": "route_ticket", "description": "", "parameters": {}}}]),
        "response_text": reply, "response_tool_calls": json.dumps(tool_calls or []), "finish_reason": "stop",
        "prompt_tokens": 100, "completion_tokens": 10, "latency_ms": None, "cost_usd": None, "occurrences": 1,
        "pii_findings": 0,
    }


def test_reply_type_tells_tool_calls_json_and_text_apart():
    assert reply_type(clean_call(1, "x", tool_calls=ROUTE)) == "tool:route_ticket"
    assert reply_type(clean_call(2, "x", reply='{"amount": 3}')) == "json"
    assert reply_type(clean_call(3, "x", reply="{not json")) == "text"
    assert reply_type(clean_call(4, "x", reply="Hello")) == "text"


def test_a_call_logged_without_token_usage_counts_its_tokens_estimated_from_its_text():
    logged = clean_call(1, "x", reply="Hello")
    bare = {**logged, "prompt_tokens": None, "completion_tokens": None, "response_text": "a" * 40}
    assert usage(logged) == (100, 10)
    assert usage(bare) == (-(-(len(bare["messages"]) + len(bare["tools"])) // CHARS_PER_TOKEN), 10)
    tool_call = {**bare, "response_text": None, "response_tool_calls": json.dumps(ROUTE)}
    assert usage(tool_call)[1] == -(-len(json.dumps(ROUTE)) // CHARS_PER_TOKEN)


def test_signature_puts_the_reply_type_first_then_tools_system_and_last_message():
    signature = task_signature(clean_call(1, "I was charged twice", system="Route tickets." + " policy" * 500, tool_calls=ROUTE))
    lines = signature.split("\n")
    assert lines[0] == "reply: tool:route_ticket" and lines[1] == "tools: route_ticket"
    assert lines[2].startswith("system: Route tickets.") and len(lines[2]) <= len("system: ") + 400
    assert lines[3] == "message: I was charged twice"


def test_only_new_texts_are_embedded_and_the_rest_come_from_the_warehouse(tmp_path):
    encoded = []

    def encode(texts):
        encoded.extend(texts)
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    warehouse = DuckDBWarehouse(str(tmp_path / "warehouse.duckdb"))
    first = embed(["a", "bb", "a"], encode, warehouse)
    second = embed(["bb", "ccc"], encode, warehouse)
    assert encoded == ["a", "bb", "ccc"]
    assert first.tolist() == [[1, 1], [2, 1], [1, 1]] and second.tolist() == [[2, 1], [3, 1]]


def blobs(centres: list[list[float]], per_blob: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.vstack([np.array(c) + rng.normal(0, 0.02, (per_blob, len(c))) for c in centres])
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def calls_for(embeddings: np.ndarray) -> tuple[pd.DataFrame, list[str]]:
    rows = [clean_call(i, f"message {i}", reply="ok") for i in range(len(embeddings))]
    return frame("clean_calls", rows), [task_signature(r) for r in rows]


CENTRES = [np.eye(16)[i].tolist() for i in range(4)]


def test_tasks_keep_their_ids_in_the_next_cycle_and_a_new_cluster_gets_a_new_id():
    first_embeddings = blobs(CENTRES[:3], 60, seed=1)
    calls, signatures = calls_for(first_embeddings)
    first = find_tasks(calls, signatures, first_embeddings)
    assert sorted(first.tasks["task_id"]) == ["task-001", "task-002", "task-003"]

    second_embeddings = blobs(CENTRES, 70, seed=2)  # the same three tasks with more calls, and a fourth
    calls, signatures = calls_for(second_embeddings)
    second = find_tasks(calls, signatures, second_embeddings, previous=first.tasks)

    task_of_first = dict(zip(first.labels, first.task_clusters["task_id"]))
    by_centre = lambda result, n: [result.task_clusters["task_id"][i * n] for i in range(len(result.tasks))]  # noqa: E731
    assert by_centre(second, 70)[:3] == by_centre(first, 60)
    assert by_centre(second, 70)[3] == "task-004"
    assert set(second.tasks.loc[second.tasks["task_id"] != "task-004", "matched_from"]) == set(task_of_first.values())
    assert second.tasks.set_index("task_id").loc["task-004", "matched_from"] == ""


def test_task_rows_describe_size_shares_reply_types_and_a_central_example():
    embeddings = blobs(CENTRES[:2], 50, seed=3)
    calls, signatures = calls_for(embeddings)
    calls.loc[0, "occurrences"] = 11  # one row standing for eleven identical calls
    tasks = find_tasks(calls, signatures, embeddings).tasks.set_index("task_id")
    assert tasks["calls"].sum() == 110 and abs(tasks["share_of_calls"].sum() - 1) < 1e-9
    assert sorted(tasks["calls"]) == [50, 60]
    assert set(tasks["reply_types"]) == {json.dumps({"text": 50}), json.dumps({"text": 60})}
    assert all(example.startswith("reply: text") for example in tasks["example"])


def test_calls_in_no_cluster_stay_unassigned_and_make_no_task():
    embeddings = blobs(CENTRES[:2], 20, seed=5)
    calls, signatures = calls_for(embeddings)
    found = find_tasks(calls, signatures, embeddings, config=ClusterConfig(min_cluster_size=50))
    assert set(found.task_clusters["task_id"]) == {NOISE}
    assert found.tasks.empty


def test_the_structure_of_a_call_weighs_more_than_its_message():
    def encode(texts):  # a text's "embedding": which of three words it holds
        words = ("tool:route_ticket", "Summarize", "charged", "down")
        return np.array([[w in t for w in words] for t in texts], dtype=np.float32) + 1e-3

    charged = task_signature(clean_call(1, "I was charged twice", tool_calls=ROUTE))
    down = task_signature(clean_call(2, "the site is down", tool_calls=ROUTE))
    summary = task_signature(clean_call(3, "I was charged twice", system="Summarize.", reply="ok"))
    a, b, c = signature_embeddings([charged, down, summary], encode)
    assert a @ b > a @ c  # the same job on another topic is closer than another job on the same topic


def test_calls_needing_another_kind_of_answer_are_another_task_even_when_they_embed_alike():
    embeddings = blobs(CENTRES[:1], 40, seed=6)
    rows = [clean_call(i, "same words", tool_calls=ROUTE if i % 2 else None, reply=None if i % 2 else "ok") for i in range(40)]
    calls, signatures = frame("clean_calls", rows), [task_signature(r) for r in rows]
    mixes = [json.loads(reply_types) for reply_types in find_tasks(calls, signatures, embeddings).tasks["reply_types"]]
    assert all(len(mix) == 1 for mix in mixes)
    assert {kind for mix in mixes for kind in mix} == {"text", "tool:route_ticket"}
