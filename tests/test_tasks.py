"""Step 3 around the clustering: signatures, the embedding cache, task descriptions, ids stable across cycles."""

import json
import zlib
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline.settings import ClusterConfig
from pipeline.warehouse import DuckDBWarehouse, frame
from pipeline.tasks import (
    CHARS_PER_TOKEN, NOISE, PreviousCycle, Tasks, embed, find_tasks, reply_type, signature_embeddings, task_signature, usage,
)

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


def words_encoder(*words: str):
    """A text's "embedding": which of `words` it holds (and a little of everything, so none is zero)."""
    def encode(texts: list[str]) -> np.ndarray:
        vectors = np.array([[w in t for w in words] for t in texts], dtype=np.float32) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return encode


def tasks_of(rows: list[dict], encode, previous=None, **config) -> Tasks:
    calls, signatures = frame("clean_calls", rows), [task_signature(r) for r in rows]
    embeddings = signature_embeddings(signatures, encode)
    return find_tasks(calls, signatures, embeddings, encode, previous, ClusterConfig(**config), min_calls=30)


def tool_call(name: str, **arguments) -> list[dict]:
    return [{"id": "c", "name": name, "arguments": arguments}]


def test_calls_answering_with_one_tool_are_one_task_whatever_they_are_about():
    topics = ["I was charged twice", "the site is down", "where is my parcel", "change my address"]
    rows = [clean_call(i, topics[i % 4], tool_calls=ROUTE) for i in range(80)]
    found = tasks_of(rows, words_encoder("charged", "down", "parcel", "address"))
    [task] = found.tasks.itertuples()
    assert (task.title, task.kind, task.calls, task.formed) == ("route_ticket call", "tool:route_ticket", 80, "one tool")


def test_a_tool_used_in_two_clearly_different_ways_is_split_only_where_both_can_be_trained():
    by_id = [clean_call(i, "x", tool_calls=tool_call("lookup", order_id="A1")) for i in range(40)]
    by_mail = [clean_call(40 + i, "x", tool_calls=tool_call("lookup", email="<EMAIL_ADDRESS_1>")) for i in range(35)]
    rare = [clean_call(80 + i, "x", tool_calls=tool_call("lookup", order_id="A1", email="e")) for i in range(5)]
    split = tasks_of(by_id + by_mail + rare, words_encoder("x")).tasks
    assert sorted(split["calls"]) == [35, 45] and all("split by argument names" in f for f in split["formed"])
    assert len(tasks_of(by_id + by_mail[:20], words_encoder("x")).tasks) == 1


def test_calls_offering_a_tool_with_another_argument_schema_are_another_task():
    other = [{"type": "function", "function": {"name": "route_ticket", "parameters": {"type": "object"}}}]
    rows = [clean_call(i, "x", tool_calls=ROUTE) for i in range(40)]
    rows += [{**clean_call(40 + i, "x", tool_calls=ROUTE), "tools": json.dumps(other)} for i in range(40)]
    tasks = tasks_of(rows, words_encoder("x")).tasks
    assert len(tasks) == 2 and set(tasks["title"]) == {"route_ticket call"}


def test_an_agents_text_replies_split_by_what_they_do_not_by_what_they_are_about():
    cities = ("Oslo", "Lima", "Pune")

    def name(i: int) -> str:
        return chr(97 + i % 26) + chr(97 + i // 26)

    def ask(i: int) -> str:
        return f"Could you give me your user id, {cities[i % 3]} traveller {name(i)}?"

    def confirm(i: int) -> str:
        return f"Shall I cancel your {cities[i % 3]} trip, {name(i)} (yes/no)?"

    def encode(texts):  # like a sentence embedding: what a reply does, then its city, then the rest of its words
        jobs, places = words_encoder("user id", "cancel")(texts), words_encoder(*cities)(texts)
        rest = np.array([np.random.default_rng(zlib.crc32(t.encode())).normal(0, 1, 8) for t in texts])
        return np.hstack([jobs, 0.2 * places, 0.4 * rest / np.linalg.norm(rest, axis=1, keepdims=True)])

    rows = [clean_call(i, "x", reply=ask(i) if i % 2 else confirm(i)) for i in range(120)]
    tasks = tasks_of(rows, encode).tasks
    assert sorted(tasks["calls"]) == [60, 60] and all("silhouette" in f for f in tasks["formed"])
    by_topic = [clean_call(i, "x", reply=ask(i)) for i in range(120)]
    assert len(tasks_of(by_topic, encode).tasks) == 1


def test_replies_from_a_closed_set_of_labels_are_one_task():
    labels = ["billing", "shipping", "refund_request", "order_status"]
    rows = [clean_call(i, "x", reply=labels[i % 4]) for i in range(200)]
    [task] = tasks_of(rows, words_encoder(*labels)).tasks.itertuples()
    assert task.calls == 200 and task.formed.startswith("labels: 4 values")


def test_a_reply_near_no_task_stays_unassigned_and_says_why():
    rows = [clean_call(i, "x", reply="Could you give me your user id?" if i % 2 else "Shall I cancel it?") for i in range(120)]
    rows.append(clean_call(120, "x", reply="A haiku about the sea"))
    found = tasks_of(rows, words_encoder("user id", "cancel", "sea", "haiku", "I"))
    assert found.task_clusters["task_id"].iloc[-1] == NOISE
    assert found.task_clusters["reason"].iloc[-1].startswith("an outlier text reply: the most similar other reply")
    assert (found.task_clusters["reason"].iloc[:-1] == "").all() and len(found.tasks) == 2


def test_different_agents_text_replies_are_different_tasks_and_a_small_one_is_listed():
    rows = [clean_call(i, "x", system="Summarize tickets.", reply=f"A summary of ticket {i} for the team") for i in range(40)]
    rows += [clean_call(40 + i, "x", system="Plan the week for the team.", reply=f"A plan for week {i} of the team")
             for i in range(10)]
    tasks = tasks_of(rows, words_encoder("Summarize", "Plan", "summary", "plan")).tasks.set_index("calls")
    assert tasks.loc[40, "formed"] == "one task" and tasks.loc[10, "formed"] == "small: 10 calls of their kind"


def test_titles_and_examples_show_no_placeholders_or_ids():
    rows = [clean_call(i, "My id is <USER_ID_1>, booking KP8KZY, card 4539068144", tool_calls=ROUTE) for i in range(40)]
    [task] = tasks_of(rows, words_encoder("x")).tasks.itertuples()
    assert "[user id]" in task.example and "[id]" in task.example
    assert not any(token in task.example + task.title for token in ("<USER_ID_1>", "KP8KZY", "4539068144"))


def test_tasks_keep_their_ids_in_the_next_cycle_and_a_new_tool_gets_a_new_id():
    first_rows = [clean_call(i, "x", tool_calls=tool_call(f"tool_{i % 3}")) for i in range(90)]
    first = tasks_of(first_rows, words_encoder("x"))
    assert sorted(first.tasks["task_id"]) == ["task-001", "task-002", "task-003"]

    second_rows = first_rows + [clean_call(100 + i, "x", tool_calls=tool_call(f"tool_{i % 4}")) for i in range(120)]
    second = tasks_of(second_rows, words_encoder("x"), PreviousCycle(first.tasks, first.task_clusters))
    ids = dict(zip(second.tasks["title"], second.tasks["task_id"]))
    assert ids == {"tool_0 call": "task-001", "tool_1 call": "task-002", "tool_2 call": "task-003", "tool_3 call": "task-004"}
    assert set(second.tasks["matched_from"]) == {"task-001", "task-002", "task-003", ""}


def test_a_task_of_new_calls_only_keeps_the_id_of_the_same_tool():
    first = tasks_of([clean_call(i, "x", tool_calls=tool_call("a")) for i in range(40)], words_encoder("x"))
    rows = [clean_call(100 + i, "x", tool_calls=tool_call(name)) for i in range(40) for name in ("b", "a")]
    second = tasks_of(rows, words_encoder("x"), PreviousCycle(first.tasks, first.task_clusters))
    assert dict(zip(second.tasks["title"], second.tasks["task_id"])) == {"a call": "task-001", "b call": "task-002"}


def test_when_a_task_splits_its_lineage_says_so():
    replies = ["Could you give me your user id?", "Shall I cancel it?"]
    rows = [clean_call(i, "x", reply=replies[i % 2]) for i in range(120)]
    encode = words_encoder("user id", "cancel")
    one = tasks_of(rows, encode, split_silhouette=1.1)  # a first cycle that did not split them
    two = tasks_of(rows, encode, PreviousCycle(one.tasks, one.task_clusters))
    assert sorted(two.tasks["task_id"]) == ["task-001", "task-002"]
    assert two.tasks.set_index("task_id").loc["task-002", "lineage"] == "split from task-001"


def test_task_rows_describe_size_shares_reply_types_and_a_central_example():
    rows = [clean_call(i, "x", tool_calls=ROUTE) for i in range(50)] + [clean_call(50 + i, "x", reply="ok") for i in range(50)]
    rows[0]["occurrences"] = 11  # one row standing for eleven identical calls
    tasks = tasks_of(rows, words_encoder("x")).tasks.set_index("task_id")
    assert tasks["calls"].sum() == 110 and abs(tasks["share_of_calls"].sum() - 1) < 1e-9
    assert sorted(tasks["calls"]) == [50, 60]
    assert set(tasks["reply_types"]) == {json.dumps({"text": 50}), json.dumps({"tool:route_ticket": 60})}
    assert all(example.startswith("reply: ") for example in tasks["example"])


def test_the_structure_of_a_call_weighs_more_than_its_message():
    def encode(texts):  # a text's "embedding": which of three words it holds
        words = ("tool:route_ticket", "Summarize", "charged", "down")
        return np.array([[w in t for w in words] for t in texts], dtype=np.float32) + 1e-3

    charged = task_signature(clean_call(1, "I was charged twice", tool_calls=ROUTE))
    down = task_signature(clean_call(2, "the site is down", tool_calls=ROUTE))
    summary = task_signature(clean_call(3, "I was charged twice", system="Summarize.", reply="ok"))
    a, b, c = signature_embeddings([charged, down, summary], encode)
    assert a @ b > a @ c  # the same job on another topic is closer than another job on the same topic
