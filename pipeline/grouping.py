"""Step 3's grouping: which calls are one task.

For a small model a task is one skill: a kind of answer plus the input it reads. Calls that answer with the same
tool need the same skill (read the conversation, fill that tool's arguments) whatever the conversation is about,
so a tool-call task is one agent's tool, or one argument schema of it where calls offer it with several. It is
split further only by clearly different argument patterns, each part still trainable. An agent is the system
prompt and the tools offered, digits masked, near-identical ones together.

An agent's text and JSON replies are grouped by what the reply does. Each reply is read with its placeholders named
by type and its digits masked (a JSON reply by its shape), so a city or a date is no reason to split. hdbscan may
split an agent's replies into parts of at least `min_calls`, kept only where the parts follow different kinds of
request ("ask for the user id" after the first message, "present flight options" after a flight search), not where
they differ by topic. Replies drawn from a closed set of short
values (intent labels) are one classification task, however many values there are. A reply that no other reply of
its agent is like stays `unassigned`, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.clustering import cluster
from pipeline.settings import ClusterConfig

PART_CHARS = 400  # per text read: MiniLM reads 256 word pieces at most
LABEL_WORDS = 5  # a reply of at most this many words, from a closed set of them, is a label


@dataclass
class Grouping:
    labels: np.ndarray  # per call, its group; -1: unassigned
    reasons: list[str]  # per call, why it is unassigned; "" for the others
    kinds: dict[int, str] = field(default_factory=dict)  # group -> reply kind: "tool:<name>", "json" or "text"
    notes: dict[int, str] = field(default_factory=dict)  # group -> how it was formed, in words
    replies: list[str] = field(default_factory=list)  # per call, its reply as read (masked), for keywords


def group_calls(calls: list[dict], embed_texts: Callable[[list[str]], np.ndarray], config: ClusterConfig,
                min_calls: int) -> Grouping:
    """Each call's group (see the module's docstring); `min_calls` is the smallest task step 5 trains."""
    kinds = reply_kinds(calls)
    replies = [reply_text(call) for call in calls]
    agents = _agents([_structure(call) for call in calls], embed_texts, config.agent_similarity)
    grouping = Grouping(np.full(len(calls), -1), [""] * len(calls), replies=replies)
    members: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, (agent, kind) in enumerate(zip(agents, kinds)):
        members[(agent, kind)].append(i)

    for key in sorted(key for key in members if key[1].startswith("tool:")):
        for part, note in _by_argument_pattern(calls, members[key], min_calls):
            _add(grouping, part, key[1].split("#")[0], note)

    written = sorted(key for key in members if not key[1].startswith("tool:"))
    if written:
        texts = [i for key in written for i in members[key]]
        vectors = dict(zip(texts, embed_texts([replies[i] for i in texts])))
        for key in written:
            group = members[key]
            _split_replies(grouping, group, key[1], np.stack([vectors[i] for i in group]), [replies[i] for i in group],
                           [request_kind(calls[i]) for i in group], config, min_calls)
    return _without_empty_groups(grouping)


def request_kind(call: dict) -> str:
    """What a reply follows: the customer's first message, a later one, or the result of which tool."""
    messages = json.loads(call["messages"])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        called = next((c.get("function", {}).get("name") for m in reversed(messages) for c in m.get("tool_calls") or []), "")
        return f"tool:{called}"
    users = sum(m.get("role") == "user" for m in messages)
    return f"{last.get('role', '')}:{'first' if users <= 1 else 'later'}"


def _without_empty_groups(grouping: Grouping) -> Grouping:
    """Groups renumbered in order, leaving out those whose every call turned out an outlier."""
    kept = [label for label in sorted(grouping.kinds) if (grouping.labels == label).any()]
    number = {old: new for new, old in enumerate(kept)}
    grouping.labels = np.array([number.get(label, -1) for label in grouping.labels], dtype=int)
    grouping.kinds = {number[old]: grouping.kinds[old] for old in kept}
    grouping.notes = {number[old]: grouping.notes[old] for old in kept}
    return grouping


def reply_kinds(calls: list[dict]) -> list[str]:
    """Per call, `tool:<name>` (with `#<schema hash>` where calls offer that tool with different argument schemas),
    `json` for a JSON object or array, else `text`."""
    named = [_called_tool(call) for call in calls]
    schemas: dict[str, set[str]] = defaultdict(set)
    for name, schema in filter(None, named):
        schemas[name].add(schema)
    kinds = []
    for call, tool in zip(calls, named):
        if tool:
            name, schema = tool
            kinds.append(f"tool:{name}#{schema}" if len(schemas[name]) > 1 else f"tool:{name}")
        else:
            text = call["response_text"] if isinstance(call["response_text"], str) else ""
            kinds.append("json" if text.strip()[:1] in ("{", "[") and _is_json(text) else "text")
    return kinds


def reply_text(call: dict) -> str:
    """What a reply says, as grouping reads it: placeholders as their type's words, digits as 0, the first
    `PART_CHARS` characters. For a tool call, its name and argument names; for JSON, its shape (keys, and the type
    of each value: what a record holds, not which one it is)."""
    tool_calls = json.loads(call["response_tool_calls"])
    if tool_calls:
        first = tool_calls[0]
        arguments = first.get("arguments") if isinstance(first.get("arguments"), dict) else {}
        return f"{first['name']} {' '.join(sorted(arguments))}"
    text = call["response_text"] if isinstance(call["response_text"], str) else ""
    if text.strip()[:1] in ("{", "[") and _is_json(text):
        return json.dumps(_shape(json.loads(text)))[:PART_CHARS]
    return masked(text)[:PART_CHARS]


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def masked(text: str) -> str:
    """`<PERSON_2>` -> "person", every digit -> 0: what stays when the values are taken out."""
    text = _PLACEHOLDER.sub(lambda m: m.group(1).lower().replace("_", " "), text)
    return _DIGIT.sub("0", text)


_PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*?)_\d+>")
_DIGIT = re.compile(r"\d")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _called_tool(call: dict) -> tuple[str, str] | None:
    """The name of the tool a reply calls (its first call), and a hash of the argument schema the call offers it
    with ("" where the call does not offer it)."""
    tool_calls = json.loads(call["response_tool_calls"])
    if not tool_calls:
        return None
    name = tool_calls[0]["name"]
    offered = next((t["function"].get("parameters") for t in json.loads(call["tools"] or "[]")
                    if isinstance(t.get("function"), dict) and t["function"].get("name") == name), None)
    schema = json.dumps(_schema_shape(offered), sort_keys=True) if offered is not None else ""
    return name, hashlib.sha256(schema.encode()).hexdigest()[:8] if schema else ""


def _schema_shape(schema):
    """What an argument schema asks for, without its wording: descriptions and titles left out (step 2 scrubs their
    examples call by call, `<PERSON_3>` in one and `<PERSON_5>` in the next), placeholders without their number."""
    if isinstance(schema, dict):
        return {k: _schema_shape(v) for k, v in schema.items() if k not in ("description", "title", "examples")}
    if isinstance(schema, list):
        return [_schema_shape(item) for item in schema]
    return _PLACEHOLDER.sub(r"<\1>", schema) if isinstance(schema, str) else schema


def _structure(call: dict) -> str:
    """Who is answering: the tools offered and the system prompt, digits masked (a policy stamped with the time
    is one policy)."""
    messages = json.loads(call["messages"])
    system = next((m["content"] for m in messages if m["role"] == "system" and isinstance(m.get("content"), str)), "")
    tools = sorted(t["function"]["name"] for t in json.loads(call["tools"] or "[]") if isinstance(t.get("function"), dict))
    return masked(f"tools: {', '.join(tools) or 'none'}\nsystem: {system[:PART_CHARS]}")


def _agents(structures: list[str], embed_texts: Callable[[list[str]], np.ndarray], similarity: float) -> list[int]:
    """Per call, its agent: calls whose structures embed within `similarity` (cosine) of each other, chained."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import radius_neighbors_graph

    distinct = list(dict.fromkeys(structures))
    if len(distinct) == 1:
        return [0] * len(structures)
    graph = radius_neighbors_graph(embed_texts(distinct), 1 - similarity, metric="cosine")
    _, agent_of = connected_components(graph, directed=False)
    index = {s: int(agent_of[i]) for i, s in enumerate(distinct)}
    return [index[s] for s in structures]


def _add(grouping: Grouping, members: list[int], kind: str, note: str) -> int:
    label = len(grouping.kinds)
    grouping.labels[members] = label
    grouping.kinds[label], grouping.notes[label] = kind, note
    return label


def _by_argument_pattern(calls: list[dict], members: list[int], min_calls: int) -> list[tuple[list[int], str]]:
    """One part, or one per set of argument names where two or more sets have `min_calls` calls each (the tool is
    used in clearly different ways, and each way can be trained); a rarer set joins the part it shares most names
    with."""
    def names(i: int) -> frozenset[str]:
        arguments = json.loads(calls[i]["response_tool_calls"])[0].get("arguments")
        return frozenset(arguments) if isinstance(arguments, dict) else frozenset()

    patterns = Counter(names(i) for i in members)
    common = [p for p, n in patterns.most_common() if n >= min_calls]
    if len(common) < 2:
        return [(members, "one tool")]
    parts: dict[frozenset[str], list[int]] = {p: [] for p in common}
    for i in members:
        pattern = names(i)
        nearest = pattern if pattern in parts else max(common, key=lambda p: len(p & pattern) / max(len(p | pattern), 1))
        parts[nearest].append(i)
    evidence = ", ".join(f"({', '.join(sorted(p)) or 'no arguments'}): {patterns[p]}" for p in common)
    return [(parts[p], f"split by argument names, each set trainable: {evidence}") for p in common]


def _split_replies(grouping: Grouping, group: list[int], kind: str, vectors: np.ndarray, replies: list[str],
                   contexts: list[str], config: ClusterConfig, min_calls: int) -> None:
    """One agent's text (or JSON) replies: one task, or one per part hdbscan finds (each of `min_calls` or more)
    where the parts follow different kinds of request (`request_kind`), by a normalized mutual information of at
    least `split_context`. Parts that differ by topic (summaries of billing issues, of delivery issues) answer the
    same kind of request; parts that do different jobs ("ask for the user id", "present flight options") do not,
    and a router can then tell them apart before any reply exists. A reply hdbscan left out
    joins the part of the reply most like it; one that no other reply of its agent is like (`outlier_similarity`)
    is unassigned."""
    if _is_label_set(replies):
        values = Counter(replies)
        _add(grouping, group, kind, f"labels: {len(values)} values ({', '.join(v for v, _ in values.most_common(3))}, …)")
        return
    labels = np.zeros(len(group), dtype=int)
    note = "one task" if len(group) >= min_calls else f"small: {len(group)} calls of their kind"
    if len(group) >= 2 * min_calls and len(set(replies)) > 1:
        from sklearn.metrics import normalized_mutual_info_score

        found = cluster(vectors, config, min_size=min_calls)
        parts = len(set(found.tolist()) - {-1})
        placed = found >= 0
        follows = normalized_mutual_info_score([contexts[i] for i in np.flatnonzero(placed)], found[placed]) if parts > 1 else 0.0
        if follows >= config.split_context:
            labels, note = found, f"one of {parts} parts of an agent's {kind} replies, each after its own kind of request (NMI {follows:.2f})"
        elif parts > 1:
            note = f"one task; {parts} parts by content would follow the same requests (NMI {follows:.2f})"
    parts = sorted(set(labels.tolist()) - {-1})
    ids = [_add(grouping, [group[i] for i in np.flatnonzero(labels == p)], kind, note) for p in parts]
    if len(group) < min_calls:  # a small task whole: too few replies to tell an odd one
        return
    nearest, neighbour = _nearest_other(vectors)
    for i in np.flatnonzero(labels == -1):  # in no dense part: the part of the reply most like it
        grouping.labels[group[i]] = ids[parts.index(labels[neighbour[i]])] if labels[neighbour[i]] >= 0 else ids[0]
    for i in np.flatnonzero(nearest < config.outlier_similarity):
        grouping.labels[group[i]] = -1
        grouping.reasons[group[i]] = (f"an outlier {kind} reply: the most similar other reply of its agent is at "
                                      f"cosine {nearest[i]:.2f}, under {config.outlier_similarity:g}")


def _nearest_other(vectors: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the cosine to the most similar other row, and that row."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    best, which = np.empty(len(unit)), np.empty(len(unit), dtype=int)
    for start in range(0, len(unit), chunk):
        similarity = unit[start : start + chunk] @ unit.T
        np.fill_diagonal(similarity[:, start : start + chunk], -np.inf)
        which[start : start + chunk] = similarity.argmax(axis=1)
        best[start : start + chunk] = similarity.max(axis=1)
    return best, which


def _is_label_set(replies: list[str]) -> bool:
    """Replies drawn from a closed set of short values: nearly all of at most `LABEL_WORDS` words, and few distinct
    ones for the calls (a tenth, or 20 where there are fewer than 200 calls)."""
    short = sum(len(r.split()) <= LABEL_WORDS for r in replies)
    return short >= 0.9 * len(replies) and len(set(replies)) <= max(20, len(replies) // 10)
