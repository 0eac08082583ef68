"""Step 3, tasks: embed each call's task signature, cluster the calls into recurring tasks, and describe them.

A call's signature is what decides the kind of answer it needs: the reply type (text, JSON, or which tool), the
tools offered, the system prompt and the last user or tool message. The whole transcript would drown that in
conversation history. Its two halves are embedded apart and mixed, the structure (reply type, tools, system
prompt) weighing `STRUCTURE_WEIGHT`: one embedding of all of it lets the message's topic split a task ("charged
twice" tickets from "site down" tickets) where the agent does one job. Embeddings are cached by text hash in the
warehouse, so a rerun embeds only new texts.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.clustering import central_rows, centroids, cluster, keywords, match_to_previous
from pipeline.settings import ClusterConfig, Prices
from pipeline.warehouse import Warehouse, frame

NOISE = "unassigned"  # calls in no task: they stay with the LLM
PART_CHARS = 400  # per part of a signature: MiniLM reads 256 word pieces at most
STRUCTURE_WEIGHT = 0.85
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text, for calls whose log has no token usage

@dataclass
class Tasks:
    task_clusters: pd.DataFrame
    tasks: pd.DataFrame
    embeddings: np.ndarray
    labels: np.ndarray


def reply_type(call: dict) -> str:
    """`tool:<name>` for a tool call, `json` for a JSON object or array, else `text`."""
    tool_calls = json.loads(call["response_tool_calls"])
    if tool_calls:
        return f"tool:{tool_calls[0]['name']}"
    text = call["response_text"] if isinstance(call["response_text"], str) else ""
    return "json" if text.strip()[:1] in ("{", "[") and _is_json(text) else "text"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def task_signature(call: dict) -> str:
    """Reply type first, so truncation never loses it; then tools offered, system prompt, last user or tool message."""
    return "\n".join(_signature_parts(call))


def signature_embeddings(signatures: list[str], embed_texts: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Each signature's structure and message embedded apart, then mixed (see the module's docstring)."""
    structures, messages = zip(*(s.rsplit("\nmessage: ", 1) for s in signatures)) if signatures else ((), ())
    mixed = STRUCTURE_WEIGHT * embed_texts(list(structures)) + (1 - STRUCTURE_WEIGHT) * embed_texts(list(messages))
    return (mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _signature_parts(call: dict) -> list[str]:
    messages = json.loads(call["messages"])
    system = next((m["content"] for m in messages if m["role"] == "system" and m.get("content")), "")
    last = next((m["content"] for m in reversed(messages) if m["role"] in ("user", "tool") and m.get("content")), "")
    tools = sorted(t["function"]["name"] for t in json.loads(call["tools"]))
    return [f"reply: {reply_type(call)}", f"tools: {', '.join(tools) or 'none'}", f"system: {system[:PART_CHARS]}",
            f"message: {last[:PART_CHARS]}"]


def embed(texts: list[str], encode: Callable[[list[str]], np.ndarray], warehouse: Warehouse) -> np.ndarray:
    """Embeddings of `texts`, from the warehouse's embedding cache where known; only new texts are encoded."""
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    known = warehouse.cached_embeddings(hashes)
    new = {h: t for h, t in zip(hashes, texts) if h not in known}
    if new:
        vectors = encode(list(new.values()))
        warehouse.cache_embeddings(dict(zip(new, vectors)))
        known.update(zip(new, vectors))
    return np.array([known[h] for h in hashes], dtype=np.float32)


def find_tasks(
    calls: pd.DataFrame,
    signatures: list[str],
    embeddings: np.ndarray,
    previous: pd.DataFrame | None = None,
    config: ClusterConfig = ClusterConfig(),
    prices: Prices = Prices(),
) -> Tasks:
    """Cluster the calls; tasks matching a previous cycle's task keep its id, new ones get the next free id."""
    labels = split_by_structure(cluster(embeddings, config), signatures) if len(calls) else np.array([], dtype=int)
    ids = _task_ids(centroids(embeddings, labels), previous)
    task_of = [ids[label] if label >= 0 else NOISE for label in labels]
    clusters = frame("task_clusters", {"call_id": calls["call_id"].to_numpy(), "called_at": calls["called_at"].to_numpy(),
                                       "task_id": task_of, "signature": signatures})
    tasks = _describe(calls, signatures, embeddings, labels, ids, previous, prices)
    return Tasks(clusters, tasks, embeddings, labels)


def split_by_structure(labels: np.ndarray, signatures: list[str]) -> np.ndarray:
    """A task never mixes reply types or tool sets: calls that need another kind of answer, or are offered other
    tools, are another task even where their embeddings lie close (neighbouring function sets, one agent's tools)."""
    structure = ["\n".join(s.split("\n", 2)[:2]) for s in signatures]  # the reply and tools lines
    keys = [f"{label}\n{key}" if label >= 0 else "" for label, key in zip(labels, structure)]
    split = pd.factorize(pd.Series(keys))[0]
    return np.where(labels >= 0, split, -1)


def _task_ids(new: dict[int, np.ndarray], previous: pd.DataFrame | None) -> dict[int, str]:
    known = {} if previous is None or previous.empty else {
        row.task_id: np.array(json.loads(row.centroid), dtype=np.float32) for row in previous.itertuples()
    }
    matched = match_to_previous(new, known)
    taken = [int(t.split("-")[1]) for t in known]
    next_number = max(taken, default=0) + 1
    ids = {}
    for label in sorted(new):
        if matched.get(label):
            ids[label] = matched[label]
        else:
            ids[label] = f"task-{next_number:03d}"
            next_number += 1
    return ids


def _describe(calls, signatures, embeddings, labels, ids, previous, prices) -> pd.DataFrame:
    records = calls.to_dict("records")
    # a row stands for `occurrences` identical calls: shares count every one of them
    weight = np.array([r["occurrences"] for r in records], dtype=float)
    tokens = weight * np.array([sum(usage(r)) for r in records])
    spend = weight * np.array([_spend(r, prices) for r in records])
    words = keywords(signatures, labels) if len(calls) else {}
    central = central_rows(embeddings, labels) if len(calls) else {}
    previous_centroids = {} if previous is None or previous.empty else dict(zip(previous["task_id"], previous["centroid"]))
    task_centroids = centroids(embeddings, labels) if len(calls) else {}
    rows = []
    for label, task_id in sorted(ids.items(), key=lambda item: item[1]):
        members = np.flatnonzero(labels == label)
        member_records = [records[i] for i in members]
        centroid = task_centroids[label]
        before = previous_centroids.get(task_id)
        rows.append({
            "task_id": task_id,
            "title": " / ".join(words.get(label, [])[:3]),
            "keywords": json.dumps(words.get(label, [])),
            "calls": int(weight[members].sum()),
            "share_of_calls": float(weight[members].sum() / weight.sum()),
            "tokens": int(tokens[members].sum()),
            "share_of_tokens": float(tokens[members].sum() / max(tokens.sum(), 1)),
            "spend_usd": float(spend[members].sum()),
            "share_of_spend": float(spend[members].sum() / max(spend.sum(), 1e-12)),
            "reply_types": json.dumps(_weighted_counts(member_records, lambda r: [reply_type(r)])),
            "tools": json.dumps(_weighted_counts(
                member_records, lambda r: [t["name"] for t in json.loads(r["response_tool_calls"])]
            )),
            "example": signatures[central[label]],
            "example_call_id": records[central[label]]["call_id"],
            "matched_from": task_id if before is not None else "",
            "similarity": float(np.dot(centroid, np.array(json.loads(before)))) if before is not None else float("nan"),
            "centroid": json.dumps([round(float(x), 6) for x in centroid]),
        })
    return frame("tasks", rows)


def _weighted_counts(records: list[dict], names_of: Callable[[dict], list[str]]) -> dict[str, int]:
    counts: Counter = Counter()
    for record in records:
        for name in names_of(record):
            counts[name] += record["occurrences"]
    return dict(counts.most_common())


def usage(record: dict) -> tuple[int, int]:
    """(prompt, completion) tokens as logged; where the log has none (a bare transcript), estimated from the text at
    `CHARS_PER_TOKEN`, so that such calls still count in the shares of tokens and spend."""
    prompt, completion = record["prompt_tokens"], record["completion_tokens"]
    if pd.isna(prompt):
        prompt = math.ceil((len(record["messages"]) + len(record["tools"] or "")) / CHARS_PER_TOKEN)
    if pd.isna(completion):
        text = record["response_text"]
        completion = math.ceil(len(text if isinstance(text, str) and text else record["response_tool_calls"]) / CHARS_PER_TOKEN)
    return int(prompt), int(completion)


def _spend(record: dict, prices: Prices) -> float:
    if not pd.isna(record["cost_usd"]):
        return float(record["cost_usd"])
    prompt, completion = usage(record)
    return (prompt * prices.input_usd + completion * prices.output_usd) / 1e6


def task_map(embeddings: np.ndarray, task_ids: list[str]) -> bytes:
    """A PNG of the calls in two dimensions (PCA), one colour per task, unassigned calls in grey."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display on a build machine or in a Dagster run
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    points = PCA(n_components=2, random_state=0).fit_transform(embeddings) if len(embeddings) > 2 else np.zeros((len(embeddings), 2))
    figure, axes = plt.subplots(figsize=(8, 6), dpi=100)
    ids = np.array(task_ids)
    noise = ids == NOISE
    axes.scatter(points[noise, 0], points[noise, 1], s=6, c="lightgrey", label=f"{NOISE} ({noise.sum()})")
    for i, task_id in enumerate(sorted(set(task_ids) - {NOISE})):
        members = ids == task_id
        axes.scatter(points[members, 0], points[members, 1], s=8, color=plt.cm.tab20(i % 20), label=f"{task_id} ({members.sum()})")
    axes.set_title("Calls by task (PCA of task-signature embeddings)")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(fontsize=7, markerscale=2, loc="best")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def calls_and_embeddings(warehouse: Warehouse, task_id: str, encode: Callable[[list[str]], np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    """What the per-task steps read: one task's calls, oldest first, and their signature embeddings (cached)."""
    calls = warehouse.task_calls(task_id)
    return calls, signature_embeddings(list(calls["signature"]), lambda texts: embed(texts, encode, warehouse))
