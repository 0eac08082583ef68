"""Context fitting, per task: how much of a long conversation a call keeps, and how its tool results are shortened.

- The window keeps the last `window` messages of the conversation (0 keeps them all), and always reaches back to the
  last user turn: what the user asked is never cut, however many tool results came after it.
- Tool results are minified when they are JSON; their lists are cut to `list_items` with a marker of how many were
  left out, and any result still over `tool_result_chars` is cut with a marker too.
- A call that does not fit the model's context after all this is not cut further: it is counted and stays with
  the LLM (`fits`).

The window is chosen per task from held-out calls (`choose_window`): the smallest one scoring within a margin of the
best tried.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from pipeline.copying import CopyRule
from pipeline.pruning import NO_PRUNING, Pruning


@dataclass(frozen=True)
class ContextPolicy:
    window: int = 0
    list_items: int = 10
    tool_result_chars: int = 2000

    def apply(self, call: dict) -> dict:
        messages = json.loads(call["messages"])
        system = [m for m in messages if m["role"] == "system"]
        conversation = [m for m in messages if m["role"] != "system"]
        start = max(0, len(conversation) - self.window) if self.window else 0
        last_user = max((i for i, m in enumerate(conversation) if m["role"] == "user"), default=start)
        kept = conversation[min(start, last_user):]
        if kept and kept[0]["role"] == "tool":  # a result whose call was cut would answer nothing
            kept = kept[1:]
        kept = [{**m, "content": self.shorten(m["content"])} if m["role"] == "tool" else m for m in kept]
        return {**call, "messages": json.dumps(system + kept, ensure_ascii=False)}

    def shorten(self, result: str | None) -> str:
        if not result:
            return result or ""
        with contextlib.suppress(json.JSONDecodeError):  # a result that is not JSON stays as the tool wrote it
            result = json.dumps(_cut_lists(json.loads(result), self.list_items), ensure_ascii=False, separators=(",", ":"))
        if len(result) > self.tool_result_chars:
            result = result[: self.tool_result_chars] + f"…[{len(result) - self.tool_result_chars} characters cut]"
        return result


@dataclass(frozen=True)
class InputRule:
    """Everything between a logged call and an adapter's input, and the arguments its reply copies from that input
    (`pipeline.copying`), stored with the adapter."""

    pruning: Pruning = NO_PRUNING
    context: ContextPolicy = ContextPolicy()
    copying: CopyRule = CopyRule()

    def prepare(self, call: dict) -> dict:
        return self.context.apply(self.pruning.apply(call))

    def describe(self) -> str:
        window = f"last {self.context.window} messages" if self.context.window else "whole conversation"
        copied = f"; copies {self.copying.describe()} from its input" if self.copying.arguments else ""
        return f"{self.pruning.describe()}; {window}{copied}"

    def to_dict(self) -> dict:
        return {"pruning": self.pruning.to_dict(), "context": asdict(self.context), "copying": self.copying.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping) -> InputRule:
        copying = CopyRule.from_dict(data["copying"]) if "copying" in data else CopyRule()  # adapters trained before it
        return cls(Pruning.from_dict(data["pruning"]), ContextPolicy(**data["context"]), copying)


def fits(prompt_tokens: int, reply_tokens: int, context_length: int) -> bool:
    return prompt_tokens + reply_tokens <= context_length


def choose_window(scores: Mapping[int, float], margin: float) -> int:
    """The smallest window (0 = the whole conversation, the largest) scoring within `margin` of the best tried."""
    best = max(scores.values())
    return min((w for w, s in scores.items() if s >= best - margin), key=lambda w: w or float("inf"))


def window_coverage(calls: list[dict], policy: ContextPolicy) -> float:
    """The share of tool-call replies whose argument values, where the call's input holds them at all, are all still
    in the input that `policy` keeps: a window that cuts them off leaves the model to guess them. Calls whose
    arguments come from nowhere in the input (computed, or the model's own) and text replies count as covered."""
    checked = [(values, _input_text(call)) for call in calls if (values := _argument_values(call))]
    needed = [[v for v in values if v in text] for values, text in checked]
    kept = [_input_text(policy.apply(call)) for call in calls if _argument_values(call)]
    covered = sum(all(v in text for v in values) for values, text in zip(needed, kept))
    return covered / len(checked) if checked else 1.0


def _argument_values(call: dict) -> list[str]:
    """The values a tool-call reply's arguments hold, as text, that are long enough to be copied rather than chosen
    (`<USER_ID_1>`, "HAT159", 2024-05-20; not "yes" or 2)."""
    values: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str | int | float) and not isinstance(value, bool) and len(str(value)) >= 4:
            values.append(str(value))

    for tool_call in json.loads(call["response_tool_calls"]):
        walk(tool_call.get("arguments"))
    return values


def _input_text(call: dict) -> str:
    """Everything the conversation says, tool calls and results included (the system prompt is never cut)."""
    return "\n".join(
        (m.get("content") or "") + "".join(json.dumps(c.get("function", c), ensure_ascii=False) for c in m.get("tool_calls") or [])
        for m in json.loads(call["messages"]) if m["role"] != "system"
    )


def _cut_lists(value, limit: int):
    if isinstance(value, list):
        kept = [_cut_lists(v, limit) for v in value[:limit]]
        return kept + [f"…{len(value) - limit} more"] if len(value) > limit else kept
    if isinstance(value, dict):
        return {k: _cut_lists(v, limit) for k, v in value.items()}
    return value
