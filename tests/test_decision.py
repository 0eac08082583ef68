"""Step 6's rules and report: when a task is replaceable, that a promotion is never a regression, which tasks a
cycle retrains, and what the report adds up to."""


import pandas as pd

from finetune.adapters import promoted_version, promotions, record_promotion
from pipeline.decision import cycle_plan
from pipeline.decision import decide, fell_short, promote, retrain_reason
from pipeline.settings import DecisionConfig
from pipeline.report import html, markdown, report_rows, totals

CONFIG = DecisionConfig(thresholds={"tool": 0.9, "json": 0.9, "text": 0.8}, min_held_out=20)


def test_a_task_is_replaceable_when_its_adapter_reaches_the_threshold_on_enough_calls():
    good = decide("tool", [1.0] * 19 + [0.5] * 1, CONFIG)
    assert good.replaceable and good.score == 0.975 and good.ci_low <= 0.975 <= good.ci_high
    assert "reaches the tool threshold 0.9" in good.reason


def test_a_task_stays_with_the_llm_below_the_threshold_or_on_too_few_calls_with_the_reason():
    low = decide("text", [0.7] * 30, CONFIG)
    assert not low.replaceable and "below the text threshold 0.8" in low.reason
    few = decide("json", [1.0] * 10, CONFIG)
    assert not few.replaceable and "10 held-out calls, fewer than the 20 needed" in few.reason


def test_a_mean_on_the_threshold_with_a_wide_interval_is_not_enough():
    unsure = decide("tool", [1.0] * 18 + [0.0] * 2, CONFIG)
    assert not unsure.replaceable and unsure.score == 0.9 and unsure.ci_low < 0.8
    assert "reaches the tool threshold 0.9, but its interval reaches down to" in unsure.reason


def test_a_challenger_is_promoted_only_when_it_beats_the_champion_on_the_same_calls():
    assert promote(0.8, None)
    assert promote(0.91, 0.9)
    assert not promote(0.9, 0.9)
    assert not promote(0.85, 0.9)


def test_the_promotion_history_keeps_every_judgement_and_the_last_promoted_version_serves(tmp_path):
    (tmp_path / "task-001").mkdir()
    assert promoted_version(tmp_path, "task-001") is None
    record_promotion(tmp_path, "task-001", {"version": 1, "score": 0.8, "promoted": True})
    record_promotion(tmp_path, "task-001", {"version": 2, "score": 0.7, "promoted": False})
    assert promoted_version(tmp_path, "task-001") == 1
    assert [entry["version"] for entry in promotions(tmp_path, "task-001")] == [1, 2]


def test_a_cycle_retrains_new_tasks_grown_tasks_and_tasks_whose_score_fell_and_nothing_else():
    assert retrain_reason(100, None, None, None, CONFIG) == "new task: no adapter yet"
    assert retrain_reason(130, 100, 0.9, 0.9, CONFIG) == "data grew 30% since the adapter's training"
    assert retrain_reason(110, 100, 0.82, 0.9, CONFIG) == "held-out score fell from 0.900 to 0.820"
    assert retrain_reason(110, 100, 0.88, 0.9, CONFIG) == ""


def tasks_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "task_id": ["task-001", "task-002", "task-003"], "title": ["route", "plan", "label"], "calls": [50, 30, 20],
        "share_of_calls": [0.5, 0.3, 0.1], "tokens": [5000, 9000, 1000], "share_of_tokens": [0.25, 0.45, 0.05],
        "spend_usd": [2.0, 6.0, 1.0], "share_of_spend": [0.2, 0.6, 0.1],
    })


def evaluation(task_id: str, variant: str, score: float, *, version=0, promoted=False, replaceable=False, reason="") -> dict:
    adapter = variant == "adapter"
    return {"task_id": task_id, "variant": variant, "candidate": "smollm2", "adapter_version": version, "score": score,
            "ci_low": score - 0.1, "ci_high": score + 0.05, "promoted": promoted, "replaceable": replaceable, "reason": reason,
            "prompt_tokens": 90.0 if adapter else 290.0, "calls_unfit": 1 if adapter else 0,
            "input_rule": "3 static system lines dropped; last 4 messages" if adapter else "last 4 messages"}


def test_the_report_adds_up_the_replaceable_share_and_the_spend_before_and_after():
    evaluations = pd.DataFrame([
        evaluation("task-001", "zero_shot", 0.1, replaceable=True, reason="ok"),
        evaluation("task-001", "few_shot", 0.4, replaceable=True, reason="ok"),
        evaluation("task-001", "adapter", 0.95, version=2, promoted=True, replaceable=True, reason="ok"),
        evaluation("task-002", "zero_shot", 0.2, reason="score 0.500 below the text threshold 0.8"),
        evaluation("task-002", "adapter", 0.5, version=1, promoted=True, reason="score 0.500 below the text threshold 0.8"),
    ])
    rows = report_rows(tasks_frame(), evaluations, {"smollm2": 0.02})
    assert rows.set_index("task_id").loc["task-001", ["fine_tuned", "adapter_version", "replaceable"]].tolist() == [0.95, 2, True]
    assert rows.set_index("task_id").loc["task-003", "reason"] == "not evaluated"

    summary = totals(rows, tasks_frame())
    assert (summary["replaceable_tasks"], summary["share_of_calls"], summary["share_of_tokens"]) == (1, 0.5, 0.25)
    assert summary["spend_before_usd"] == 10.0
    assert summary["spend_after_usd"] == 10.0 - 2.0 + 5000 * 0.02 / 1e6

    text = markdown(rows, summary, {"scores per task": "scores.png"})
    assert "1 of 3 tasks can move to a small model: 50% of the agent's LLM calls and 25% of its tokens" in text
    assert "<table>" in html(text) and "![scores per task](scores.png)" in text
    assert "| task-001  |                    290 |              90 |             1 | 3 static system lines dropped; last 4 messages |" in text


def test_a_cycle_plan_retrains_only_what_changed():
    adapters = {"task-001": pd.DataFrame({"train_calls": [100]}), "task-002": pd.DataFrame({"train_calls": [100]})}
    plan = cycle_plan(
        ["task-001", "task-002", "task-003"],
        train_calls={"task-001": 105, "task-002": 150, "task-003": 40},
        adapters=adapters,
        scores_now={"task-001": 0.93},
        scores_at_promotion={"task-001": 0.95},
        config=CONFIG,
    )
    assert plan == {"task-001": "", "task-002": "data grew 50% since the adapter's training", "task-003": "new task: no adapter yet"}


def test_a_candidate_whose_adapter_fell_below_its_few_shot_is_given_up_and_the_next_one_tried():
    judged = [
        {"version": 1, "candidate": "smollm2", "score": 0.41, "few_shot": 0.59, "replaceable": False},
        {"version": 2, "candidate": "gemma", "score": 0.95, "few_shot": 1.0, "replaceable": True},  # below, but it serves
        {"version": 3, "candidate": "qwen", "score": 0.7, "few_shot": 0.5, "replaceable": False},
    ]
    assert fell_short(judged) == {"smollm2": "its adapter v1 scored 0.41, below its few-shot 0.59"}
    assert retrain_reason(100, 100, 0.41, 0.41, CONFIG, judged[0]) == (
        "smollm2: its adapter v1 scored 0.41, below its few-shot 0.59; the next candidate is tried")
    assert retrain_reason(100, 100, 0.95, 0.95, CONFIG, judged[1]) == ""
