"""Step 6's rules: when a task can move to its SLM, when a new adapter replaces the promoted one, and when a task
needs training again. Pure functions over scores and counts, so the rules are pinned by tests, not by runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from pipeline.metrics import bootstrap_ci
from pipeline.settings import DecisionConfig


@dataclass(frozen=True)
class Decision:
    replaceable: bool
    score: float
    ci_low: float
    ci_high: float
    reason: str


def decide(kind: str, scores: Sequence[float], config: DecisionConfig = DecisionConfig()) -> Decision:
    """Replaceable when the adapter's mean score on at least `min_held_out` calls reaches the kind's threshold, and
    the interval around it reaches no further than `interval_margin` below: a mean that clears the bar on a few
    lucky calls is not enough."""
    if not len(scores):
        return Decision(False, float("nan"), float("nan"), float("nan"), "no held-out calls scored")
    mean = float(sum(scores) / len(scores))
    low, high = bootstrap_ci(scores)
    threshold = config.thresholds[kind]
    if len(scores) < config.min_held_out:
        return Decision(False, mean, low, high, f"{len(scores)} held-out calls, fewer than the {config.min_held_out} needed")
    if mean < threshold:
        return Decision(False, mean, low, high, f"score {mean:.3f} below the {kind} threshold {threshold}")
    if low < threshold - config.interval_margin:
        return Decision(False, mean, low, high, f"score {mean:.3f} reaches the {kind} threshold {threshold}, but its "
                        f"interval reaches down to {low:.3f}, more than {config.interval_margin} below")
    return Decision(True, mean, low, high, f"score {mean:.3f} reaches the {kind} threshold {threshold}")


def promote(challenger: float, champion: float | None) -> bool:
    """A new adapter replaces the promoted one only by scoring higher on the same held-out calls: never a regression."""
    return champion is None or challenger > champion


def fell_short(history: Sequence[dict]) -> dict[str, str]:
    """Candidate → why it is not tried again on the task: an adapter of it scored below its own base model few-shot
    on the same held-out calls, and the task stayed with the LLM. Fine-tuning that does worse than two examples in
    the prompt has failed for that model, so the next candidate is tried before the task is given up. `history` is
    the task's promotion history."""
    short = {}
    for entry in history:
        if entry.get("few_shot") is not None and entry["score"] < entry["few_shot"] and not entry["replaceable"]:
            short[entry["candidate"]] = (f"its adapter v{entry['version']} scored {entry['score']:.2f}, below its "
                                         f"few-shot {entry['few_shot']:.2f}")
    return short


def retrain_reason(calls_now: int, trained_on: int | None, score_now: float | None, score_at_promotion: float | None,
                   config: DecisionConfig = DecisionConfig(), last_judged: dict | None = None) -> str:
    """Why the task needs a new adapter this cycle, or "" when its adapter stays. `last_judged` is the newest entry
    of its promotion history."""
    if trained_on is None:
        return "new task: no adapter yet"
    if last_judged and (short := fell_short([last_judged])):
        return f"{last_judged['candidate']}: {short[last_judged['candidate']]}; the next candidate is tried"
    growth = calls_now / max(trained_on, 1) - 1
    if growth >= config.retrain_growth:
        return f"data grew {growth:.0%} since the adapter's training"
    if score_now is not None and score_at_promotion is not None and score_at_promotion - score_now >= config.retrain_drop:
        return f"held-out score fell from {score_at_promotion:.3f} to {score_now:.3f}"
    return ""


def cycle_plan(
    task_ids: list[str], train_calls: dict[str, int], adapters: dict[str, pd.DataFrame], scores_now: dict[str, float],
    scores_at_promotion: dict[str, float], config: DecisionConfig, last_judged: dict[str, dict] | None = None,
) -> dict[str, str]:
    """Task id → why it retrains this cycle, "" for a task that keeps its adapter and is only evaluated again.
    `last_judged` holds each task's newest promotion-history entry."""
    plan = {}
    for task_id in task_ids:
        versions = adapters.get(task_id)
        trained_on = int(versions["train_calls"].iloc[-1]) if versions is not None and len(versions) else None
        plan[task_id] = retrain_reason(train_calls[task_id], trained_on, scores_now.get(task_id),
                                       scores_at_promotion.get(task_id), config, (last_judged or {}).get(task_id))
    return plan
