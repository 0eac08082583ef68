"""Step 4, pick: profile a task with each candidate's tokenizer, drop the candidates that cannot serve it, score the
rest zero-shot and few-shot on a sample of its held-out calls, and choose one by the selection policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finetune.candidates import Candidate
from finetune.evaluate import held_out_sample, score_model
from finetune.models import base_checkpoint, load_base
from finetune.prompts import prompt_text, reply_kind, target_text
from pipeline.selection import SelectionConfig, choose, profile, unfit_reason

SELECTION_COLUMNS = {
    "task_id": "string",
    "candidate": "string",
    "parameters": "int64",
    "context_length": "int64",
    "serving_usd_per_1m_tokens": "float64",
    "input_p50": "int64",
    "input_p95": "int64",
    "output_p50": "int64",
    "output_p95": "int64",
    "eligible": "bool",
    "zero_shot": "float64",  # mean score on the sample, NaN where not scored
    "few_shot": "float64",
    "calls_scored": "int64",
    "tokens_per_second": "float64",  # generation here, few-shot
    "chosen": "bool",
    "reason": "string",  # why not eligible, why chosen, why the task was skipped
}


@dataclass(frozen=True)
class Pick:
    table: pd.DataFrame  # slm_selection rows for the task, one per candidate
    chosen: str  # "" when the task is skipped
    reason: str


def pick_candidate(
    task_id: str,
    calls: pd.DataFrame,
    embeddings: np.ndarray,
    candidates: list[Candidate],
    home: Path,
    config: SelectionConfig,
    embed: Callable[[list[str]], np.ndarray],
) -> Pick:
    """`calls` are the task's calls oldest first, `embeddings` their signature embeddings in the same order."""
    if len(calls) < config.min_calls:
        reason = f"{len(calls)} calls, fewer than the {config.min_calls} needed to train and judge a model"
        return Pick(_frame([_row(task_id, c, reason=reason) for c in candidates]), "", reason)
    _, sample_calls, examples = held_out_sample(calls, embeddings, config, config.score_sample)
    kind = reply_kind(sample_calls[0])
    records = calls.to_dict("records")
    rows = []
    for candidate in candidates:
        model, tokenizer = load_base(base_checkpoint(candidate, home))
        task = profile(
            calls,
            [len(tokenizer(prompt_text(tokenizer, c)).input_ids) for c in records],
            [len(tokenizer(target_text(c)).input_ids) + 1 for c in records],  # + the end-of-turn token
        )
        unfit = unfit_reason(task, candidate.context_length, candidate.tool_calling)
        if unfit:
            rows.append(_row(task_id, candidate, task, reason=unfit))
            continue
        zero = score_model(model, tokenizer, sample_calls, kind, task.output_p95, embed)
        few = score_model(model, tokenizer, sample_calls, kind, task.output_p95, embed, examples)
        rows.append(_row(task_id, candidate, task, eligible=True, zero_shot=zero.mean, few_shot=few.mean,
                         calls_scored=len(sample_calls), tokens_per_second=few.tokens_per_second))
    table = _frame(rows)
    eligible = table[table["eligible"]]
    pinned = config.pins.get(task_id, "")
    chosen = choose(
        pd.DataFrame({
            "candidate": eligible["candidate"],
            "score": eligible[["zero_shot", "few_shot"]].max(axis=1),
            "cost": eligible["serving_usd_per_1m_tokens"],
            "parameters": eligible["parameters"],
        }),
        config.policy,
        pinned,
    )
    reason = ("pinned by configuration" if pinned else f"best by {config.policy} of {len(eligible)} eligible") if chosen else "no candidate can serve the task"
    table.loc[table["candidate"] == chosen, ["chosen", "reason"]] = [True, reason]
    return Pick(table, chosen, reason)


def _row(task_id: str, candidate: Candidate, task=None, *, eligible=False, zero_shot=np.nan, few_shot=np.nan,
         calls_scored=0, tokens_per_second=np.nan, reason="") -> dict:
    lengths = {k: getattr(task, k, 0) for k in ("input_p50", "input_p95", "output_p50", "output_p95")}
    return {
        "task_id": task_id, "candidate": candidate.name, "parameters": candidate.parameters,
        "context_length": candidate.context_length, "serving_usd_per_1m_tokens": candidate.serving_usd_per_1m_tokens,
        **lengths, "eligible": eligible, "zero_shot": zero_shot, "few_shot": few_shot, "calls_scored": calls_scored,
        "tokens_per_second": tokens_per_second, "chosen": False, "reason": reason,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(SELECTION_COLUMNS)).astype(SELECTION_COLUMNS)
