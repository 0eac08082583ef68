"""Step 6's rules: when a task can move to its SLM, when a new adapter replaces the promoted one, and when a task
needs training again. Pure functions over scores and counts, so the rules are pinned by tests, not by runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.metrics import bootstrap_ci


@dataclass(frozen=True)
class DecisionConfig:
    # mean held-out score a fine-tuned adapter must reach, by reply kind (see pipeline/metrics.py for the scores)
    thresholds: dict[str, float] = field(default_factory=lambda: {"tool": 0.9, "json": 0.9, "text": 0.8})
    min_held_out: int = 20  # fewer held-out calls cannot show a task is replaceable
    eval_sample: int = 24  # held-out calls each model answers: bounds the step's time on a CPU
    retrain_growth: float = 0.25  # retrain when the task's calls grew by this share since the adapter's data
    retrain_drop: float = 0.05  # or when the promoted adapter's score fell by this much since its promotion


@dataclass(frozen=True)
class Decision:
    replaceable: bool
    score: float
    ci_low: float
    ci_high: float
    reason: str


def decide(kind: str, scores: Sequence[float], config: DecisionConfig = DecisionConfig()) -> Decision:
    """Replaceable when the adapter's mean score on at least `min_held_out` calls reaches the kind's threshold."""
    if not len(scores):
        return Decision(False, float("nan"), float("nan"), float("nan"), "no held-out calls scored")
    mean = float(sum(scores) / len(scores))
    low, high = bootstrap_ci(scores)
    threshold = config.thresholds[kind]
    if len(scores) < config.min_held_out:
        return Decision(False, mean, low, high, f"{len(scores)} held-out calls, fewer than the {config.min_held_out} needed")
    if mean < threshold:
        return Decision(False, mean, low, high, f"score {mean:.3f} below the {kind} threshold {threshold}")
    return Decision(True, mean, low, high, f"score {mean:.3f} reaches the {kind} threshold {threshold}")


def promote(challenger: float, champion: float | None) -> bool:
    """A new adapter replaces the promoted one only by scoring higher on the same held-out calls: never a regression."""
    return champion is None or challenger > champion


def retrain_reason(calls_now: int, trained_on: int | None, score_now: float | None, score_at_promotion: float | None,
                   config: DecisionConfig = DecisionConfig()) -> str:
    """Why the task needs a new adapter this cycle, or "" when its adapter stays."""
    if trained_on is None:
        return "new task: no adapter yet"
    growth = calls_now / max(trained_on, 1) - 1
    if growth >= config.retrain_growth:
        return f"data grew {growth:.0%} since the adapter's training"
    if score_now is not None and score_at_promotion is not None and score_at_promotion - score_now >= config.retrain_drop:
        return f"held-out score fell from {score_at_promotion:.3f} to {score_now:.3f}"
    return ""
