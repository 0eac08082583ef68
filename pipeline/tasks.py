"""Step 3, tasks: group the calls into recurring tasks, describe them, and keep their ids from cycle to cycle.

Which calls are one task is `pipeline.grouping`'s: one per tool called, and an agent's text or JSON replies by
what they do. Each call also gets a signature, read from the request: the reply type, the tools offered, the system
prompt and the last user or tool message. Steps 4–6 pick few-shot examples by it, and a task's centre (what the
next cycle matches new tasks against) and the task map are drawn in its space. Its two halves are embedded apart
and mixed, the structure (reply type, tools, system prompt) weighing `STRUCTURE_WEIGHT`, so that the message's
topic weighs little. Embeddings are cached by text hash in the warehouse, so a rerun embeds only new texts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from pipeline.clustering import central_rows, centroids, keywords, match_to_previous
from pipeline.grouping import PART_CHARS, Grouping, group_calls
from pipeline.settings import ClusterConfig, Prices
from pipeline.warehouse import Warehouse, frame

NOISE = "unassigned"  # calls in no task: they stay with the LLM
STRUCTURE_WEIGHT = 0.85
CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text, for calls whose log has no token usage


@dataclass
class Tasks:
    task_clusters: pd.DataFrame
    tasks: pd.DataFrame
    embeddings: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class PreviousCycle:
    """What the last run of step 3 wrote: its tasks, and each call's task."""

    tasks: pd.DataFrame
    task_clusters: pd.DataFrame


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
    embed_texts: Callable[[list[str]], np.ndarray],
    previous: PreviousCycle | None = None,
    config: ClusterConfig = ClusterConfig(),
    prices: Prices = Prices(),
    min_calls: int = 30,
) -> Tasks:
    """Group the calls (`pipeline.grouping`) and describe each task; `embeddings` are the signatures'. A task keeps
    the id of the last cycle's task whose calls it holds most of; a new one gets the next free id. `min_calls` is
    the smallest task step 5 trains."""
    records = calls.to_dict("records")
    grouping = group_calls(records, embed_texts, config, min_calls) if records else Grouping(np.array([], int), [])
    labels = grouping.labels
    centres = centroids(embeddings, labels) if records else {}
    ids, lineage = _task_ids(labels, list(calls["call_id"]), centres, grouping.kinds, previous)
    task_of = [ids[label] if label >= 0 else NOISE for label in labels]
    clusters = frame("task_clusters", {"call_id": calls["call_id"].to_numpy(), "called_at": calls["called_at"].to_numpy(),
                                       "task_id": task_of, "signature": signatures, "reason": grouping.reasons})
    tasks = _describe(records, signatures, embeddings, grouping, ids, lineage, previous, prices)
    return Tasks(clusters, tasks, embeddings, labels)


def _task_ids(labels: np.ndarray, call_ids: list[str], centres: dict[int, np.ndarray], kinds: dict[int, str],
              previous: PreviousCycle | None) -> tuple[dict[int, str], dict[int, str]]:
    """Each group's task id, and its lineage in words. A group takes the id of the last cycle's task that gave it
    the most calls (one to one). A group of only new calls takes the id of a last-cycle task of the same tool, or of
    one whose centre is within cosine 0.9. The others get the next free id."""
    groups = sorted(kinds)
    before = previous.tasks if previous is not None else frame("tasks")
    old_ids = list(before["task_id"])
    task_before = dict(zip(previous.task_clusters["call_id"], previous.task_clusters["task_id"])) if previous else {}
    given: Counter = Counter()  # (group, last cycle's task) -> calls it gave
    for label, call_id in zip(labels, call_ids):
        if label >= 0 and task_before.get(call_id, NOISE) != NOISE:
            given[(int(label), task_before[call_id])] += 1
    ids: dict[int, str] = {}
    if given:
        overlap = np.array([[given[(g, t)] for t in old_ids] for g in groups])
        for row, column in zip(*linear_sum_assignment(overlap, maximize=True)):
            if overlap[row, column]:
                ids[groups[row]] = old_ids[column]
    unseen = [g for g in groups if not any(given[(g, t)] for t in old_ids)]
    free = [t for t in old_ids if t not in ids.values()]
    for g in unseen:
        same_tool = next((t for t, kind in zip(before["task_id"], before["kind"])
                          if t in free and kinds[g].startswith("tool:") and kind == kinds[g]), None)
        if same_tool:
            ids[g] = same_tool
            free.remove(same_tool)
    known = {t: np.array(json.loads(c), dtype=np.float32) for t, c in zip(before["task_id"], before["centroid"]) if t in free}
    for g, matched in match_to_previous({g: centres[g] for g in unseen if g not in ids}, known).items():
        if matched:
            ids[g] = matched
    next_number = max((int(t.split("-")[1]) for t in old_ids), default=0) + 1
    for g in groups:
        if g not in ids:
            ids[g], next_number = f"task-{next_number:03d}", next_number + 1
    lineage = {}
    for g in groups:
        from_before = sum(given[(g, t)] for t in old_ids)
        sources = [t for t in old_ids if from_before and given[(g, t)] >= 0.1 * from_before]
        if ids[g] not in old_ids and sources:
            lineage[g] = f"split from {', '.join(sources)}"
        elif [t for t in sources if t != ids[g]]:
            lineage[g] = f"merged from {', '.join(sources)}"
    return ids, lineage


def _describe(records: list[dict], signatures: list[str], embeddings: np.ndarray, grouping: Grouping,
              ids: dict[int, str], lineage: dict[int, str], previous: PreviousCycle | None, prices: Prices) -> pd.DataFrame:
    labels = grouping.labels
    # a row stands for `occurrences` identical calls: shares count every one of them
    weight = np.array([r["occurrences"] for r in records], dtype=float)
    tokens = weight * np.array([sum(usage(r)) for r in records])
    spend = weight * np.array([_spend(r, prices) for r in records])
    words = keywords(grouping.replies, labels) if records else {}
    central = central_rows(embeddings, labels) if records else {}
    task_centroids = centroids(embeddings, labels) if records else {}
    before = {} if previous is None else dict(zip(previous.tasks["task_id"], previous.tasks["centroid"]))
    rows = []
    for label, task_id in sorted(ids.items(), key=lambda item: item[1]):
        members = np.flatnonzero(labels == label)
        member_records = [records[i] for i in members]
        centroid = task_centroids[label]
        kind = grouping.kinds[label]
        rows.append({
            "task_id": task_id,
            "title": title(kind, words.get(label, []), member_records),
            "keywords": json.dumps(words.get(label, [])),
            "kind": kind,
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
            "formed": grouping.notes[label],
            "example": readable(signatures[central[label]]),
            "example_call_id": records[central[label]]["call_id"],
            "matched_from": task_id if task_id in before else "",
            "similarity": float(np.dot(centroid, np.array(json.loads(before[task_id])))) if task_id in before else float("nan"),
            "lineage": lineage.get(label, ""),
            "centroid": json.dumps([round(float(x), 6) for x in centroid]),
        })
    return frame("tasks", rows)


def title(kind: str, words: list[str], records: list[dict]) -> str:
    """What people read a task by: `get_user_details call`, `JSON reply: amount / reason`, `reply: user / provide`."""
    if kind.startswith("tool:"):
        return f"{kind.removeprefix('tool:')} call"
    if kind == "json":
        keys = Counter(key for r in records for key in _json_keys(r["response_text"]))
        return "JSON reply: " + " / ".join(k for k, _ in keys.most_common(3))
    return "reply: " + " / ".join(words[:3])


def _json_keys(text: str) -> list[str]:
    value = json.loads(text)
    value = value[0] if isinstance(value, list) and value else value
    return [k for k in value if _IDENTIFIER.fullmatch(k)] if isinstance(value, dict) else []


def readable(text: str) -> str:
    """Scrubbed text as people may see it: a placeholder as its type in brackets (`[person]`), and a token that
    may be an id (letters with digits, or six digits and more) as `[id]`."""
    text = re.sub(r"<([A-Z][A-Z_]*?)_\d+>", lambda m: f"[{m.group(1).lower().replace('_', ' ')}]", text)
    return _ID_LIKE.sub("[id]", text)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ID_LIKE = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{4,}\b|\b\d{6,}\b")


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
