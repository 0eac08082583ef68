"""Each task's serving mode, and the rule that moves it on live agreement (step 6).

- `llm`: the LLM answers;
- `shadow`: the LLM answers, and the task's adapter answers the same call in the background: a live pair;
- `canary:<share>`: that share of the calls is served by the adapter;
- `slm`: the adapter answers (a share of its calls is still audited against the LLM, see `serve.audit_share`).

The rule: a task step 6 finds replaceable starts in `shadow`, and so does each newly promoted adapter. It moves to
`slm` once its live agreement, on at least `serve.live_min_calls` pairs of that adapter, reaches the decision's
threshold for its reply kind, and to `llm` when it is below it, from any mode. A mode set by hand (the
`update_serving` job's config) stays until set again or a new adapter is promoted, but still falls to `llm` when live
agreement drops; a mode in the configuration (`serve.modes`) always holds.

What the gateway needs per task is written to `SLM_HOME/serving/modes.json`, which it reloads when it changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

LLM, SHADOW, SLM, CANARY = "llm", "shadow", "slm", "canary"
AUTO = "auto"  # set by hand: give the task back to the rule
MODES_FILE = "modes.json"
RULE, HAND, CONFIGURATION = "rule", "hand", "configuration"


def parse_mode(mode: str) -> str:
    """`mode` checked: llm, shadow, slm or canary:<share> with the share in (0, 1]."""
    if mode in (LLM, SHADOW, SLM):
        return mode
    kind, _, share = mode.partition(":")
    if kind == CANARY:
        try:
            if 0 < float(share) <= 1:
                return mode
        except ValueError:
            pass
    raise ValueError(f"mode {mode!r}: expected llm, shadow, slm or canary:<share> with a share in (0, 1]")


def adapter_share(mode: str) -> float:
    """The share of a task's calls its adapter serves in `mode`."""
    if mode == SLM:
        return 1.0
    return float(mode.partition(":")[2]) if mode.startswith(f"{CANARY}:") else 0.0


@dataclass(frozen=True)
class Live:
    pairs: int = 0
    agreement: float = math.nan


@dataclass(frozen=True)
class Current:
    mode: str
    adapter_version: int
    set_by: str


def next_mode(current: Current | None, version: int, replaceable: bool, live: Live, threshold: float,
              min_pairs: int) -> tuple[str, str]:
    """(mode, reason) for a task whose promoted adapter is `version` (0: none) after step 6's decision."""
    enough = live.pairs >= min_pairs
    dropped = enough and live.agreement < threshold
    measured = f"live agreement {live.agreement:.2f} on {live.pairs} calls" if live.pairs else "no live calls yet"
    if not version or not replaceable:
        return LLM, "step 6: not replaceable"
    if current is None or current.adapter_version != version:
        return SHADOW, f"adapter v{version} newly replaceable: the LLM answers while live agreement is measured"
    if dropped:
        return LLM, f"{measured}, below the threshold {threshold}"
    if current.set_by == HAND:
        return current.mode, f"set by hand; {measured}"
    if current.mode == SHADOW and enough:
        return SLM, f"{measured} reaches the threshold {threshold}"
    if current.mode == LLM:  # replaceable again, with no evidence against this adapter
        return SHADOW, f"replaceable: the LLM answers while live agreement is measured ({measured})"
    waiting = f", {min_pairs} needed" if current.mode == SHADOW else ""
    return current.mode, f"{measured}{waiting}"


@dataclass(frozen=True)
class TaskServing:
    """What the gateway needs to serve one task's calls."""

    task_id: str
    mode: str
    adapter_version: int  # 0: none promoted, the LLM answers whatever the mode
    candidate: str = ""
    checkpoint: str = ""  # the base model's folder
    context_length: int = 0
    kind: str = "text"  # tool, json or text: what the task's replies are
    max_new_tokens: int = 256  # the reply budget evaluation used: the task's p95 reply, capped


def write_modes(folder: Path, tasks: list[TaskServing]) -> Path:
    """Written whole and renamed into place, so a gateway reloading it never reads half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODES_FILE
    staging = path.with_name(path.name + ".partial")
    staging.write_text(json.dumps({t.task_id: asdict(t) for t in tasks}, indent=2))
    staging.replace(path)
    return path


def read_modes(folder: Path, pinned: dict[str, str] | None = None) -> dict[str, TaskServing]:
    """The tasks as step 6 left them, with the configuration's modes over them."""
    path = folder / MODES_FILE
    tasks = {k: TaskServing(**v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}
    for task_id, mode in (pinned or {}).items():
        if task_id in tasks:
            tasks[task_id] = TaskServing(**{**asdict(tasks[task_id]), "mode": parse_mode(mode)})
    return tasks
