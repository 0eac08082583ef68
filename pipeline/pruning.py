"""Static prompt text, per task: what every call repeats comes out of the adapter's input.

An agent sends its whole policy and every tool's JSON schema with each call. Those tokens never change, so an
adapter trained on the task learns the behaviour they asked for, and reading them again at every step and every
call only costs time and context. A rule is learnt from a task's training calls:

- a system-prompt line is static when, with every word that holds a digit masked (dates, times, ids, amounts),
  it appears in at least `share` of the calls: a policy that stamps today's date into one line is still static.
  A static line goes; where its masked words differ between calls, those words stay, since the answer may depend
  on them (today's date does);
- tool definitions become one compact line of signatures, name and required arguments (with their allowed values
  where a schema lists a few), of the tools the task actually calls when every call offers the same tools; of each
  call's own tools where they differ.

The rule is plain data, stored with the adapter and applied the same way wherever the adapter runs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_VALUE = re.compile(r"\S*\d\S*")
_MASK = "<v>"
_ENUM_VALUES = 12  # a signature lists an argument's allowed values up to this many


@dataclass(frozen=True)
class Pruning:
    static_lines: dict[str, bool]  # masked line → whether its values vary between calls (and so are kept)
    compact_tools: bool  # replace tool definitions with signatures
    used_tools: tuple[str, ...]  # the signatures to keep where the tool set is static; () keeps each call's own

    def apply(self, call: dict) -> dict:
        """The call as the adapter sees it: same fields, static system lines and tool schemas taken out."""
        messages = json.loads(call["messages"])
        tools = json.loads(call["tools"] or "[]")
        kept_tools = [t for t in tools if not self.used_tools or t["function"]["name"] in self.used_tools]
        signatures = "; ".join(_signature(t["function"]) for t in kept_tools)
        pruned = []
        for message in messages:
            if message["role"] == "system" and message.get("content"):
                lines = [kept for line in message["content"].splitlines() if (kept := self._kept(line))]
                message = {**message, "content": "\n".join(lines)}
            pruned.append(message)
        if self.compact_tools and tools:
            system = next((m for m in pruned if m["role"] == "system"), None)
            if system is None:
                pruned.insert(0, system := {"role": "system", "content": ""})
            system["content"] = "\n".join(filter(None, [system["content"], f"Tools: {signatures}"]))
            tools = []
        pruned = [m for m in pruned if m["role"] != "system" or m["content"]]
        return {**call, "messages": json.dumps(pruned, ensure_ascii=False), "tools": json.dumps(tools)}

    def _kept(self, line: str) -> str:
        line = line.strip()
        masked = mask(line)
        if masked not in self.static_lines:
            return line
        return " ".join(_VALUE.findall(line)) if self.static_lines[masked] else ""

    def describe(self) -> str:
        """One line for the report."""
        tools = f"tools as signatures ({', '.join(self.used_tools) or 'each call’s own'})" if self.compact_tools else "no tools offered"
        varying = sum(self.static_lines.values())
        return f"{len(self.static_lines)} static system lines dropped ({varying} keep their changing values); {tools}"

    def to_dict(self) -> dict:
        return {"static_lines": self.static_lines, "compact_tools": self.compact_tools, "used_tools": list(self.used_tools)}

    @classmethod
    def from_dict(cls, data: dict) -> Pruning:
        return cls(dict(data["static_lines"]), bool(data["compact_tools"]), tuple(data["used_tools"]))


NO_PRUNING = Pruning({}, False, ())


def learn_pruning(calls: Sequence[dict], share: float = 0.9) -> Pruning:
    """The rule for a task, from its training calls: lines and tool sets found in at least `share` of them."""
    if len(calls) < 2:
        return NO_PRUNING
    needed = share * len(calls)
    values: dict[str, set[tuple[str, ...]]] = {}
    seen: Counter[str] = Counter()
    tool_sets: Counter[tuple[str, ...]] = Counter()
    for call in calls:
        messages = json.loads(call["messages"])
        lines = [line.strip() for m in messages if m["role"] == "system" for line in (m.get("content") or "").splitlines()]
        masked = {mask(line): line for line in lines if line}
        seen.update(masked.keys())
        for key, line in masked.items():
            values.setdefault(key, set()).add(tuple(_VALUE.findall(line)))
        tool_sets[tuple(sorted(t["function"]["name"] for t in json.loads(call["tools"] or "[]")))] += 1
    static = {key: len(values[key]) > 1 for key, count in seen.items() if count >= needed}
    tools, count = tool_sets.most_common(1)[0]
    used = tuple(sorted(_called_tools(calls) & set(tools))) if tools and count >= needed else ()
    return Pruning(static, any(tool_sets.keys() - {()}), used)


def mask(line: str) -> str:
    return _VALUE.sub(_MASK, line)


def _called_tools(calls: Sequence[dict]) -> set[str]:
    names = set()
    for call in calls:
        names |= {c["name"] for c in json.loads(call["response_tool_calls"] or "[]")}
        for message in json.loads(call["messages"]):
            names |= {c["function"]["name"] for c in message.get("tool_calls") or []}
    return names


def _signature(function: dict) -> str:
    """`name(argument, argument: one|of|these)`: the required arguments, with their allowed values where few."""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    arguments = []
    for name in parameters.get("required") or list(properties):
        allowed = (properties.get(name) or {}).get("enum") or []
        arguments.append(f"{name}: {'|'.join(map(str, allowed))}" if 0 < len(allowed) <= _ENUM_VALUES else name)
    return f"{function['name']}({', '.join(arguments)})"
