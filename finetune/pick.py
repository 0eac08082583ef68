"""Step 4, pick: profile a task with each candidate's tokenizer, drop the candidates that cannot serve it, score the
rest zero-shot and few-shot on a sample of its held-out calls, and choose one by the pick policy; then choose
the task's conversation window with the chosen model.

Candidates are tried best-placed first (cheapest under `score_per_cost`, smallest under `best_score`), and one that
could not beat the best scored so far even with a perfect score is neither profiled nor scored: its row says so.

A candidate is profiled on the input its adapter will read (static text pruned, `pipeline.pruning`), since that is
what it serves; the base model is scored on the prompt as logged, since without an adapter it needs the
instructions, except where the logged prompts are long (`PickConfig.score_prompt_tokens`) or longer than it can
hold: there it is scored on the pruned prompts, with the tools' signatures and the few-shot examples, since reading
a real agent's policy and every tool's schema again for each sampled call and each window costs minutes a task on a
CPU. The window is chosen on the base model few-shot, the only model there is before training: windows that leave
every sampled prompt as it was are not scored again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finetune.candidates import Candidate
from finetune.engines import Engine, EngineLoader, TransformersEngine
from finetune.evaluate import held_out_sample, score_model
from finetune.models import base_checkpoint, load_tokenizer
from finetune.prompts import prompt_text, reply_kind, target_text, token_count
from pipeline.context import InputRule, choose_window, fits, window_coverage
from pipeline.pruning import NO_PRUNING, Pruning, learn_pruning
from pipeline.pick import choose, could_win, profile, reads_pruned, unfit_reason, value
from pipeline.settings import PickConfig
from pipeline.warehouse import frame

@dataclass(frozen=True)
class Pick:
    table: pd.DataFrame  # `picks` rows for the task, one per candidate
    chosen: str  # "" when the task is skipped
    reason: str
    engine: str = ""  # what generated the replies scored (finetune.engines), "" when nothing was scored
    scored_on: str = ""  # "logged prompts" or "pruned prompts", of the chosen candidate's scores
    seconds: float = 0.0  # the step's time for the task


def pick_candidate(
    task_id: str,
    calls: pd.DataFrame,
    embeddings: np.ndarray,
    candidates: list[Candidate],
    home: Path,
    config: PickConfig,
    embed: Callable[[list[str]], np.ndarray],
    load: EngineLoader = TransformersEngine,
    given_up: Mapping[str, str] | None = None,
) -> Pick:
    """`calls` are the task's calls oldest first, `embeddings` their signature embeddings in the same order; each
    candidate generates on the engine `load` gives. `given_up` maps candidates not to try again on the task to why
    (`pipeline.decision.fell_short`); a pin overrides it."""
    started = time.perf_counter()
    if len(calls) < config.min_calls:
        reason = f"{len(calls)} calls, fewer than the {config.min_calls} needed to train and judge a model"
        return Pick(_frame([_row(task_id, c, reason=reason) for c in candidates]), "", reason)
    train, sample_calls, examples = held_out_sample(calls, embeddings, config, config.score_sample)
    kind = reply_kind(sample_calls[0])
    records = calls.to_dict("records")
    pruning = learn_pruning(train.to_dict("records"), config.prune_share)
    pinned = config.pins.get(task_id, "")
    rows: dict[str, dict] = {}
    engines: dict[str, Engine] = {}  # each candidate scored, loaded once for its scores and the window
    per_call: dict[str, list[float]] = {}  # each candidate's scores on the sample, of its better variant
    scored_on: dict[str, Pruning] = {}  # the form each candidate read its sample in
    best = None  # (value, parameters, name) of the best candidate scored so far
    # The candidate that could rank first is tried first; one that could not beat the best so far even with a
    # perfect score is neither profiled nor scored (on the demo that spares Gemma-3-270M on every task).
    for candidate in sorted(candidates, key=lambda c: (-value(1.0, c.serving_usd_per_1m_tokens, config.policy), c.parameters)):
        if pinned and candidate.name != pinned:
            rows[candidate.name] = _row(task_id, candidate, reason=f"not scored: the task is pinned to {pinned}")
            continue
        if not pinned and candidate.name in (given_up or {}):
            rows[candidate.name] = _row(task_id, candidate, reason=f"not tried again: {given_up[candidate.name]}")
            continue
        if best is not None and not could_win(candidate.serving_usd_per_1m_tokens, candidate.parameters, *best[:2], config.policy):
            rows[candidate.name] = _row(task_id, candidate, reason=f"not scored: a perfect score would not beat {best[2]} by {config.policy}")
            continue
        checkpoint = base_checkpoint(candidate, home)
        tokenizer = load_tokenizer(checkpoint)
        task = profile(
            calls,
            [token_count(tokenizer, prompt_text(tokenizer, InputRule(pruning).prepare(c))) for c in records],
            [token_count(tokenizer, target_text(c)) + 1 for c in records],  # + the end-of-turn token
        )
        full_p50 = int(np.percentile([token_count(tokenizer, prompt_text(tokenizer, c)) for c in records], 50))
        unfit = unfit_reason(task, candidate.context_length, candidate.tool_calling)
        if unfit:
            rows[candidate.name] = _row(task_id, candidate, task, full_p50, reason=unfit)
            continue
        engine = engines[candidate.name] = load(checkpoint, None)
        budget = min(task.output_p95, config.max_new_tokens)
        long = reads_pruned(full_p50, budget, candidate.context_length, config.score_prompt_tokens)
        form = scored_on[candidate.name] = pruning if long else NO_PRUNING
        fitted = [InputRule(form, config.context()).prepare(c) for c in sample_calls]
        zero = score_model(engine, fitted, kind, budget, embed, logged=sample_calls)
        few = score_model(engine, fitted, kind, budget, embed, examples, logged=sample_calls)
        per_call[candidate.name] = list(max(zero, few, key=lambda scored: scored.mean).scores["score"])
        rows[candidate.name] = _row(task_id, candidate, task, full_p50, eligible=True, zero_shot=zero.mean, few_shot=few.mean,
                                    calls_scored=len(sample_calls), tokens_per_second=few.tokens_per_second)
        reached = float(value(max(zero.mean, few.mean), candidate.serving_usd_per_1m_tokens, config.policy))
        if best is None or (reached, -candidate.parameters) > (best[0], -best[1]):
            best = (reached, candidate.parameters, candidate.name)
    table = _frame([rows[c.name] for c in candidates])
    scored = table[table["calls_scored"] > 0]
    tuned = {c.name: c.instruction_tuned for c in candidates}
    chosen, reason = choose(
        pd.DataFrame({
            "candidate": scored["candidate"],
            "score": scored[["zero_shot", "few_shot"]].max(axis=1),
            "cost": scored["serving_usd_per_1m_tokens"],
            "parameters": scored["parameters"],
            "instruction_tuned": scored["candidate"].map(tuned).astype(bool),
        }),
        config.policy,
        pinned,
        per_call,
    )
    row = table["candidate"] == chosen
    if chosen and table.loc[row, "eligible"].any():
        candidate = next(c for c in candidates if c.name == chosen)
        window, scores, coverage, unfit = _window(
            candidate, engines[chosen], records, sample_calls, examples, kind, pruning, scored_on[chosen], config, embed,
            {0: float(table.loc[row, "few_shot"].iloc[0])}, int(table.loc[row, "output_p95"].iloc[0]))
        table.loc[row, ["chosen", "reason", "context_window", "window_scores", "window_coverage", "calls_unfit"]] = [
            True, reason, window, json.dumps(scores), json.dumps(coverage), unfit]
    elif chosen:
        table.loc[row, ["chosen", "reason"]] = [True, reason]
    form = "" if chosen not in scored_on else "pruned prompts" if scored_on[chosen] != NO_PRUNING else "logged prompts"
    return Pick(table, chosen, reason, ", ".join(sorted({engine.name for engine in engines.values()})), form,
                time.perf_counter() - started)


def _window(candidate, engine, records, sample_calls, examples, kind, pruning, form, config, embed, scores, reply_tokens):
    """(the window chosen, each window's few-shot score, each window's coverage of the values the replies copy, calls
    that do not fit the context in it). The window is the smallest scoring within the margin of the best, and no
    narrower than keeps the values of `window_coverage` of the task's tool-call replies (`pipeline.context`): a few
    scored calls cannot show that an id the answer needs was said earlier than the window reaches. So windows
    narrower than that are not scored, nor wider ones once a window scores within the margin of a perfect score."""
    tokenizer = engine.tokenizer
    budget = min(reply_tokens, config.max_new_tokens)
    coverage = {w: window_coverage(records, config.context(w)) for w in sorted(set(config.windows) | {0})}
    narrowest = min((w for w, share in coverage.items() if share >= config.window_coverage), key=_width)
    read = {w: [InputRule(form, config.context(w)).prepare(c) for c in sample_calls] for w in coverage}  # as step 4 scored
    rendered = {0: [prompt_text(tokenizer, c, e) for c, e in zip(read[0], examples)]}
    for window in sorted(set(config.windows) - {0}):
        if _width(window) < _width(narrowest):
            continue
        if any(w and s >= 1.0 - config.window_margin for w, s in scores.items()):
            break
        prompts = [prompt_text(tokenizer, c, e) for c, e in zip(read[window], examples)]
        same = next((w for w, p in rendered.items() if p == prompts), None)
        rendered[window] = prompts
        if same is not None:
            scores[window] = scores[same]
        else:
            scores[window] = score_model(engine, read[window], kind, budget, embed, examples, logged=sample_calls).mean
    window = max(choose_window(scores, config.window_margin), narrowest, key=_width)
    rule = InputRule(pruning, config.context(window))
    unfit = sum(not fits(token_count(tokenizer, prompt_text(tokenizer, rule.prepare(c))), reply_tokens, candidate.context_length)
                for c in records)
    return (window, {str(w): round(s, 4) for w, s in sorted(scores.items())},
            {str(w): round(share, 4) for w, share in coverage.items()}, unfit)


def _width(window: int) -> float:
    return window or float("inf")  # 0 keeps the whole conversation


def _row(task_id: str, candidate: Candidate, task=None, full_p50=0, *, eligible=False, zero_shot=np.nan, few_shot=np.nan,
         calls_scored=0, tokens_per_second=np.nan, reason="") -> dict:
    lengths = {k: getattr(task, k, 0) for k in ("input_p50", "input_p95", "output_p50", "output_p95")}
    return {
        "task_id": task_id, "candidate": candidate.name, "parameters": candidate.parameters,
        "context_length": candidate.context_length, "serving_usd_per_1m_tokens": candidate.serving_usd_per_1m_tokens,
        "input_p50_full": full_p50, **lengths, "eligible": eligible, "zero_shot": zero_shot, "few_shot": few_shot, "calls_scored": calls_scored,
        "tokens_per_second": tokens_per_second, "context_window": 0, "window_scores": "{}", "window_coverage": "{}",
        "calls_unfit": 0,
        "chosen": False, "reason": reason,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    return frame("picks", rows)
