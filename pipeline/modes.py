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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline.warehouse import frame

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


def task_kind(reply_types: str) -> str:
    """tool, json or text: the reply kind most of a task's calls have (`tasks.reply_types`)."""
    counts = json.loads(reply_types or "{}")
    top = max(counts, key=counts.get) if counts else "text"
    return "tool" if top.startswith("tool:") else top


def plan_modes(tasks: pd.DataFrame, evaluations: pd.DataFrame, live: pd.DataFrame, previous: pd.DataFrame,
               thresholds: Mapping[str, float], min_pairs: int, hand: Mapping[str, str], pinned: Mapping[str, str],
               now: datetime) -> pd.DataFrame:
    """The `serving_modes` rows: each task's mode after step 6's decision and its live agreement, the modes set by
    hand (`auto` gives a task back to the rule) and, over all, the configuration's."""
    promoted = evaluations[evaluations["promoted"].astype(bool)].set_index("task_id")
    before = previous.set_index("task_id")
    rows = []
    for task in tasks.itertuples():
        version = int(promoted.loc[task.task_id, "adapter_version"]) if task.task_id in promoted.index else 0
        replaceable = bool(promoted.loc[task.task_id, "replaceable"]) if version else False
        measured = live[(live["task_id"] == task.task_id) & (live["adapter_version"] == version)]
        state = Live(int(measured["pairs"].iloc[0]), float(measured["agreement"].iloc[0])) if len(measured) else Live()
        old = before.loc[task.task_id] if task.task_id in before.index else None
        current = Current(old["mode"], int(old["adapter_version"]), old["set_by"]) if old is not None else None
        mode, reason = next_mode(current, version, replaceable, state, thresholds[task_kind(task.reply_types)], min_pairs)
        set_by = current.set_by if current is not None and current.set_by == HAND and mode == current.mode else RULE
        if hand.get(task.task_id) == AUTO:
            set_by = RULE
        elif task.task_id in hand:
            mode, reason, set_by = parse_mode(hand[task.task_id]), "set by hand", HAND
        if task.task_id in pinned:
            mode, reason, set_by = parse_mode(pinned[task.task_id]), "set in the configuration (serve.modes)", CONFIGURATION
        changed = old is None or old["mode"] != mode
        rows.append({
            "task_id": task.task_id, "mode": mode, "adapter_version": version,
            "offline_score": float(promoted.loc[task.task_id, "score"]) if version else math.nan,
            "live_pairs": state.pairs, "live_agreement": state.agreement, "reason": reason, "set_by": set_by,
            "changed_at": now if changed else old["changed_at"],
        })
    return frame("serving_modes", rows)


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
