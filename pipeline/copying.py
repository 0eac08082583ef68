"""Copied arguments, per task: the tool-call arguments whose values the task's replies copy from their input, so that a
small model's reply is held to the values the call it answers holds.

A reservation id, a flight number, a payment id: six random characters that the model must copy exactly from the
customer's words or a tool result, split into other tokens there than in the reply (` EGFKYU` in a message, `"EG`
in the JSON). A 135M model trained on a few hundred calls knows the id's place and shape long before it copies
it: the long demo's `get_reservation_details` adapter wrote ids of the right shape that were nowhere in the call
(`EYCDOP` for "I think it's EGFKYU").

The rule is learnt from a task's training calls, read as the adapter reads them: an argument (a path under one
tool, list items as `*`) is copied when its logged value is one of the words of the call's input in at least
`share` of the calls that hold it. Its words are the input's runs of letters, digits and `_-.@<>/+` (a trailing
full stop is punctuation); a placeholder `<PERSON_1>` is one word. The rule also keeps the shape of the values seen
(their lengths and the kinds of character in them), so that a reservation id is drawn from the six-character words
of capitals and digits, not from every word of the policy. At generation, each copied argument's schema becomes the
call's own words of that shape (`narrowed`): the model still chooses which, and its reply stays valid under the
tool's schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

_WORD = re.compile(r"[\w\-@<>/+]+(?:\.[\w\-@<>/+]+)*")
_KINDS = {"upper": str.isupper, "lower": str.islower, "digit": str.isdigit}
_ENUM_LIMIT = 2000  # words a narrowed argument may choose from; more is left free (a grammar that size costs more than it gives)


@dataclass(frozen=True)
class Copied:
    """One copied argument and the shape of its values."""

    tool: str
    path: tuple[str, ...]  # keys under the arguments; `*` for the items of a list
    lengths: tuple[int, int]  # shortest and longest value seen
    kinds: tuple[str, ...]  # of `upper`, `lower`, `digit`, `other`: the characters values were made of

    def fits(self, word: str) -> bool:
        return self.lengths[0] <= len(word) <= self.lengths[1] and set(_kinds(word)) <= set(self.kinds)


@dataclass(frozen=True)
class CopyRule:
    arguments: tuple[Copied, ...] = ()

    def narrowed(self, tool: dict, read: dict) -> dict:
        """`tool`'s function definition with each copied argument's schema narrowed to the words of `read` (the call
        as the model reads it) that have the argument's shape; an argument with an `enum` or `const` of its own, or
        whose call holds no such word, stays as it was."""
        mine = [c for c in self.arguments if c.tool == tool.get("name")]
        if not mine or not isinstance(tool.get("parameters"), dict):
            return tool
        words = sorted(set(input_words(read)))
        parameters = json.loads(json.dumps(tool["parameters"]))
        for copied in mine:
            allowed = [w for w in words if copied.fits(w)]
            node = _at(parameters, copied.path)
            if node is not None and allowed and len(allowed) <= _ENUM_LIMIT and not {"enum", "const"} & node.keys():
                node.clear()
                node["enum"] = allowed
        return {**tool, "parameters": parameters}

    def describe(self) -> str:
        return ", ".join(f"{c.tool}.{'.'.join(c.path)}" for c in self.arguments)

    def to_dict(self) -> dict:
        return {"arguments": [asdict(c) for c in self.arguments]}

    @classmethod
    def from_dict(cls, data: dict) -> CopyRule:
        return cls(tuple(Copied(c["tool"], tuple(c["path"]), tuple(c["lengths"]), tuple(c["kinds"])) for c in data["arguments"]))


def learn_copying(calls: Sequence[dict], share: float, minimum: int = 5) -> CopyRule:
    """The arguments whose string values are words of the call's input in at least `share` of the `calls` (each
    as the adapter reads it, with its logged reply) that hold them, and in at least `minimum` calls."""
    seen: dict[tuple[str, tuple[str, ...]], list[tuple[str, bool]]] = {}
    for call in calls:
        words = set(input_words(call))
        for tool, path, value in _string_arguments(json.loads(call["response_tool_calls"] or "[]")):
            seen.setdefault((tool, path), []).append((value, value in words))
    copied = []
    for (tool, path), values in sorted(seen.items()):
        if len(values) >= minimum and sum(found for _, found in values) >= share * len(values):
            texts = [v for v, found in values if found]
            copied.append(Copied(tool, path, (min(map(len, texts)), max(map(len, texts))),
                                 tuple(sorted({k for t in texts for k in _kinds(t)}))))
    return CopyRule(tuple(copied))


def input_words(call: dict) -> list[str]:
    """Every word of what the call's messages say, tool calls in the history included."""
    texts = []
    for message in json.loads(call["messages"]):
        texts.append(message.get("content") or "")
        texts += [json.dumps(c.get("function", c), ensure_ascii=False) for c in message.get("tool_calls") or []]
    return _WORD.findall("\n".join(texts))


def _kinds(word: str) -> Iterable[str]:
    for char in word:
        yield next((kind for kind, test in _KINDS.items() if test(char)), "other")


def _string_arguments(tool_calls: list[dict]) -> Iterable[tuple[str, tuple[str, ...], str]]:
    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, (*path, key))
        elif isinstance(value, list):
            for item in value:
                yield from walk(item, (*path, "*"))
        elif isinstance(value, str) and value:
            yield path, value

    for call in tool_calls:
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                continue
        for path, value in walk(arguments, ()):
            yield call.get("name", ""), path, value


def _at(schema: dict, path: tuple[str, ...]) -> dict | None:
    """The schema of the value at `path` in `schema`, the same object (to narrow in place); None where the schema
    does not spell it out."""
    node = schema
    for key in path:
        node = node.get("items") if key == "*" else (node.get("properties") or {}).get(key)
        if not isinstance(node, dict):
            return None
    return node
