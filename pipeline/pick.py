"""Step 4, pick: split a task's calls by time, profile it, and choose the candidate SLM to fine-tune.

The held-out share is the newest calls, never trained on: a model is judged on calls that came after everything
it learned from, as it would be in service. Each reply type (each tool, JSON, text) is split apart so every one
appears on both sides where it has at least two calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.metrics import bootstrap_ci
from pipeline.tasks import reply_type

POLICIES = ("score_per_cost", "best_score")


@dataclass(frozen=True)
class Profile:
    input_p50: int
    input_p95: int
    output_p50: int
    output_p95: int
    longest: int  # input and output of the longest call
    reply_types: dict[str, int]
    tools: list[str]


def split_by_time(calls: pd.DataFrame, held_out_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held_out): per reply type, the newest `held_out_share` of the calls, at least one, are held out."""
    calls = calls.sort_values(["called_at", "call_id"], kind="stable")
    kinds = pd.Series([reply_type(c) for c in calls.to_dict("records")], index=calls.index)
    held_out = []
    for _, group in calls.groupby(kinds, sort=False):
        if len(group) >= 2:
            held_out.extend(group.index[-max(1, math.floor(len(group) * held_out_share)):])
    is_held_out = calls.index.isin(held_out)
    return calls[~is_held_out], calls[is_held_out]


def profile(calls: pd.DataFrame, input_tokens: list[int], output_tokens: list[int]) -> Profile:
    kinds = [reply_type(c) for c in calls.to_dict("records")]
    totals = np.array(input_tokens) + np.array(output_tokens)
    return Profile(
        input_p50=int(np.percentile(input_tokens, 50)),
        input_p95=int(np.percentile(input_tokens, 95)),
        output_p50=int(np.percentile(output_tokens, 50)),
        output_p95=int(np.percentile(output_tokens, 95)),
        longest=int(totals.max()),
        reply_types=dict(pd.Series(kinds).value_counts()),
        tools=sorted({k.removeprefix("tool:") for k in kinds if k.startswith("tool:")}),
    )


def unfit_reason(task: Profile, context_length: int, tool_calling: bool) -> str:
    """Why a candidate cannot serve the task, or "" where it can."""
    if task.tools and not tool_calling:
        return f"the task calls tools ({', '.join(task.tools)}) and the model has no tool calling"
    if task.input_p95 + task.output_p95 > context_length:
        return f"p95 call length {task.input_p95 + task.output_p95} tokens exceeds its context of {context_length}"
    return ""


def reads_pruned(logged_p50: float, reply_tokens: int, context_length: int, long_prompt: int) -> bool:
    """Whether a base model is scored on a task's prompts pruned, as its adapter reads them, rather than as logged:
    where they are longer than `long_prompt` tokens at the p50 (`PickConfig.score_prompt_tokens`), or than the
    model's context holds with the reply."""
    return logged_p50 > long_prompt or logged_p50 + reply_tokens > context_length


def value(score, cost, policy: str = "score_per_cost"):
    """What the policy ranks by: score per serving dollar (`score_per_cost`) or the score alone (`best_score`)."""
    if policy not in POLICIES:
        raise ValueError(f"pick policy {policy!r}: expected one of {', '.join(POLICIES)}")
    return score / np.maximum(cost, 1e-9) if policy == "score_per_cost" else score


def could_win(cost: float, parameters: int, best_value: float, best_parameters: int, policy: str = "score_per_cost") -> bool:
    """Whether a candidate with a perfect score would rank above the best one scored so far (ties go to the smaller
    model): one that could not is not worth scoring."""
    bound = round(float(value(1.0, cost, policy)), 9)
    return bound > round(best_value, 9) or (bound == round(best_value, 9) and parameters < best_parameters)


def choose(scores: pd.DataFrame, policy: str = "score_per_cost", pinned: str = "",
           per_call: Mapping[str, Sequence[float]] | None = None) -> tuple[str, str]:
    """(the candidate to fine-tune, why), from one row per scored candidate with `candidate`, `score`, `cost`,
    `parameters` and `instruction_tuned`. Ties go to the smaller model.

    A model that is not instruction-tuned ranks first over one that is only where its scores on the same sampled
    calls (`per_call`, each candidate's, in the same order) are higher beyond chance. A chat or tool
    reply is what instruction tuning teaches, and a few scored calls are noise: on a real agent's task a base model
    chosen on 4 calls gave an adapter that scored 0.00, where the instruction-tuned one's few-shot had scored 0.30."""
    if pinned:
        return pinned, "pinned by configuration"
    ranked = scores.assign(value=value(scores["score"], scores["cost"], policy).round(9))
    if ranked.empty:
        return "", "no candidate can serve the task"
    ranked = ranked.sort_values(["value", "parameters"], ascending=[False, True])
    first = ranked.iloc[0]
    reason = f"best by {policy} of {len(ranked)} scored"
    tuned = ranked[ranked["instruction_tuned"].astype(bool)]
    if first["instruction_tuned"] or tuned.empty or per_call is None:
        return str(first["candidate"]), reason
    kept = tuned.iloc[0]
    # the 95% interval of the mean per-call difference: above zero is a lead beyond chance
    low, high = bootstrap_ci(np.subtract(per_call[first["candidate"]], per_call[kept["candidate"]]))
    if low > 0:
        return str(first["candidate"]), f"{reason}; beats instruction-tuned {kept['candidate']} beyond chance"
    return str(kept["candidate"]), (f"instruction-tuned, kept over {first['candidate']}: its lead on "
                                    f"{len(per_call[first['candidate']])} calls is within chance ({low:+.2f} to {high:+.2f})")
