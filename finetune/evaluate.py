"""Score models on held-out calls against the LLM's own logged replies (steps 4 and 6), and step 6's evaluation of
a task: the base model zero-shot and few-shot beside its adapters, on the same held-out calls.

Generation is bounded by the task's p95 reply length and by `max_new_tokens`, so a model that never stops costs a
bounded time and scores low rather than hanging the run; a logged text reply longer than that bound is judged on as
many of its first tokens. An adapter reads each call through the `InputRule` stored with it; a call that then does not
fit the model's context is counted, not scored, and stays with the LLM. The base model reads the prompt as logged,
in the same conversation window, except where logged prompts are long: there it reads what the adapter reads, as
in step 4, so the few-shot row is the same model on the same input without the fine-tuning.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from finetune.adapters import input_rule, promoted_version, promotions, record_promotion, trained_from, versions
from finetune.constrained import reply_schema
from finetune.engines import Engine, EngineLoader, TransformersEngine
from finetune.models import load_tokenizer
from finetune.prompts import adapter_examples, last_input, prompt_text, reply_kind, target_text, token_count
from pipeline.context import InputRule, fits
from pipeline.copying import CopyRule
from pipeline.decision import Decision, decide, promote
from pipeline.judge import Judge
from pipeline.metrics import bootstrap_ci, score_replies
from pipeline.pick import reads_pruned, split_by_time
from pipeline.pruning import NO_PRUNING, learn_pruning
from pipeline.settings import DecisionConfig, PickConfig, TrainConfig
from pipeline.warehouse import frame


@dataclass(frozen=True)
class Scored:
    scores: pd.DataFrame  # one row per call: the kind's metrics and `score`
    predictions: list[str]
    tokens_per_second: float
    seconds_per_call: float

    @property
    def mean(self) -> float:
        return float(self.scores["score"].mean()) if len(self.scores) else 0.0


def score_model(
    engine: Engine,
    calls: Sequence[dict],
    kind: str,
    max_new_tokens: int,
    embed: Callable[[list[str]], np.ndarray],
    examples: Sequence[Sequence[dict]] | None = None,
    judge: Judge | None = None,
    logged: Sequence[dict] | None = None,
    copying: CopyRule = CopyRule(),
) -> Scored:
    """Generate each call's reply (with its few-shot `examples`, if given), a structured one under its schema as the
    gateway serves it (`finetune.constrained`), and score it against the logged one. Where `calls` were prepared
    for an adapter, `logged` are the same calls as the agent sent them: the schema allows every tool the agent
    offered, as in serving, not only the ones a pruned call still names, and its `copying` arguments are words of
    the prepared call."""
    prompts = [prompt_text(engine.tokenizer, call, examples[i] if examples else ()) for i, call in enumerate(calls)]
    schemas = [reply_schema(sent, kind, copying, read) for sent, read in zip(logged or calls, calls)]
    generated = engine.generate(prompts, max_new_tokens, schemas)
    # a structured reply cut short would not parse: it is judged whole, and a model that cannot finish it in the
    # budget scores nothing
    references = [target_text(call) if kind in ("tool", "json") else _first_tokens(engine.tokenizer, target_text(call), max_new_tokens)
                  for call in calls]
    scores = score_replies(kind, references, generated.texts, embed, judge, [last_input(call) for call in calls])
    return Scored(scores, generated.texts, generated.tokens_per_second, generated.seconds_per_call)


def _first_tokens(tokenizer: PreTrainedTokenizerBase, text: str, count: int) -> str:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return text if len(ids) <= count else tokenizer.decode(ids[:count])


def held_out_sample(
    calls: pd.DataFrame, embeddings: np.ndarray, pick: PickConfig, size: int
) -> tuple[pd.DataFrame, list[dict], list[list[dict]]]:
    """(training calls, up to `size` held-out calls spread over the held-out period, each one's few-shot examples)."""
    train, held_out = split_by_time(calls, pick.held_out_share)
    sample = held_out.iloc[np.unique(np.linspace(0, len(held_out) - 1, min(size, len(held_out))).astype(int))]
    position = {call_id: i for i, call_id in enumerate(calls["call_id"])}
    examples = nearest_examples(
        embeddings[[position[c] for c in sample["call_id"]]],
        embeddings[[position[c] for c in train["call_id"]]],
        train.to_dict("records"),
        pick.few_shot,
    )
    return train, sample.to_dict("records"), examples


def nearest_examples(queries: np.ndarray, pool: np.ndarray, pool_calls: Sequence[dict], k: int) -> list[list[dict]]:
    """For each query embedding, the `k` most similar pool calls (embeddings are unit length), nearest last so it
    sits next to the call it illustrates."""
    if k == 0 or not len(pool_calls):
        return [[] for _ in range(len(queries))]
    nearest = np.argsort(-(queries @ pool.T), axis=1)[:, :k]
    return [[pool_calls[j] for j in reversed(row)] for row in nearest]


METRICS = ["valid_json", "name_match", "exact_args", "field_f1", "exact_match", "similarity", "rouge_l", "judge"]


def evaluation_row(task_id: str, variant: str, candidate: str, version: int, scored: Scored, unfit: int = 0,
                   prompt_tokens: float = np.nan, input_rule: str = "") -> dict:
    low, high = bootstrap_ci(list(scored.scores["score"])) if len(scored.scores) else (np.nan, np.nan)
    means = {m: float(scored.scores[m].mean()) if m in scored.scores else np.nan for m in METRICS}
    return {
        "task_id": task_id, "variant": variant, "candidate": candidate, "adapter_version": version,
        "calls": len(scored.scores), "calls_unfit": unfit, "prompt_tokens": prompt_tokens, "input_rule": input_rule,
        "score": scored.mean, "ci_low": low, "ci_high": high, **means,
        "seconds_per_call": scored.seconds_per_call, "tokens_per_second": scored.tokens_per_second,
    }


@dataclass(frozen=True)
class TaskEvaluation:
    table: pd.DataFrame  # one row per variant, of the `evaluations` table
    kind: str
    decision: Decision
    promoted_version: int | None  # the adapter that serves the task after this evaluation
    promotion: dict | None  # the history entry this evaluation added: a challenger judged
    engine: str  # what generated the replies scored (finetune.engines)


def evaluate_task(
    task_id: str,
    calls: pd.DataFrame,
    embeddings: np.ndarray,
    candidate: str,
    checkpoint: Path,
    context_length: int,
    adapters_root: Path,
    pick: PickConfig,
    config: DecisionConfig,
    embed: Callable[[list[str]], np.ndarray],
    judge: Judge | None = None,
    load: EngineLoader = TransformersEngine,
    training: TrainConfig = TrainConfig(),
) -> TaskEvaluation:
    """Score the base model of `candidate` (the newest adapter's) and the newest and promoted adapters on the same
    held-out calls, each generated by the engine `load` gives (the one it will be served with); promote the newest
    adapter only if it beats the promoted one there; decide whether the task can move to its SLM. Where the held-out
    part is too small to decide on, the decision rests on cross-validation (`cross_validate`) with the promoted
    adapter's input rule and `training`."""
    train, sample_calls, examples = held_out_sample(calls, embeddings, pick, config.eval_sample)
    kind = reply_kind(sample_calls[0])
    base = load(checkpoint, None)
    tokenizer = base.tokenizer
    max_new_tokens = reply_budget(tokenizer, train.to_dict("records"), pick.max_new_tokens)
    challenger, champion = max(versions(adapters_root, task_id), default=None), promoted_version(adapters_root, task_id)
    base_rule = _base_rule(tokenizer, sample_calls, input_rule(adapters_root, task_id, challenger) if challenger
                           else InputRule(learn_pruning(train.to_dict("records"), pick.prune_share), pick.context()),
                           max_new_tokens, context_length, pick)
    base_calls = [base_rule.prepare(c) for c in sample_calls]
    base_tokens = _mean_tokens(tokenizer, base_calls)
    rows = [
        evaluation_row(task_id, "zero_shot", candidate, 0,
                       score_model(base, base_calls, kind, max_new_tokens, embed, judge=judge, logged=sample_calls,
                                   copying=base_rule.copying),
                       prompt_tokens=base_tokens, input_rule=base_rule.describe()),
        evaluation_row(task_id, "few_shot", candidate, 0,
                       score_model(base, base_calls, kind, max_new_tokens, embed, examples, judge, logged=sample_calls,
                                   copying=base_rule.copying),
                       prompt_tokens=base_tokens, input_rule=base_rule.describe()),
    ]
    judged = {entry["version"] for entry in promotions(adapters_root, task_id)}
    scores: dict[int, Scored] = {}
    for version in sorted({challenger, champion} - {None}):
        # the promoted adapter may be of another candidate, tried before this one
        made_from, base_of_version = trained_from(adapters_root, task_id, version)
        rule = input_rule(adapters_root, task_id, version)
        adapted = load(base_of_version, adapters_root / task_id / f"v{version}")
        logged, prepared = _fitting(adapted.tokenizer, sample_calls, rule, max_new_tokens, context_length)
        scores[version] = score_model(adapted, prepared, kind, max_new_tokens, embed, judge=judge, logged=logged,
                                      copying=rule.copying)
        rows.append(evaluation_row(task_id, "adapter", made_from, version, scores[version], len(sample_calls) - len(prepared),
                                   _mean_tokens(adapted.tokenizer, prepared), rule.describe()))
    promotion = None
    if challenger is not None and challenger not in judged:
        champion_score = scores[champion].mean if champion is not None else None
        promotion = {
            "version": challenger, "candidate": candidate, "score": scores[challenger].mean,
            "few_shot": rows[1]["score"],  # of the challenger's own base model: below it, the candidate is given up
            "champion": champion, "champion_score": champion_score,
            "promoted": promote(scores[challenger].mean, champion_score), "calls": len(sample_calls),
            "at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        }
        champion = challenger if promotion["promoted"] else champion
    if champion is None:
        decision = Decision(False, float("nan"), float("nan"), float("nan"), "no adapter trained")
    elif len(calls) - len(train) < config.min_held_out and config.folds >= 2:
        rule = input_rule(adapters_root, task_id, champion)
        made_from, base_of_champion = trained_from(adapters_root, task_id, champion)
        folded = cross_validate(calls.to_dict("records"), kind, base_of_champion, rule, context_length, training,
                                config.folds, max_new_tokens, embed, judge)
        rows.append(evaluation_row(task_id, "cross_validated", made_from, champion, folded, input_rule=rule.describe()))
        decision = decide(kind, list(folded.scores["score"]), config)
        decision = replace(decision, reason=f"{config.folds}-fold cross-validation on {len(folded.scores)} calls: {decision.reason}")
    else:
        decision = decide(kind, list(scores[champion].scores["score"]), config)
    if promotion:
        promotion["replaceable"] = decision.replaceable  # with `few_shot`, whether the candidate is given up
        record_promotion(adapters_root, task_id, promotion)
    for row in rows:
        row.update(promoted=row["variant"] == "adapter" and row["adapter_version"] == champion,
                   replaceable=decision.replaceable, reason=decision.reason)
    table = frame("evaluations", rows)
    return TaskEvaluation(table, kind, decision, champion, promotion, base.name)


def cross_validate(
    calls: Sequence[dict],
    kind: str,
    checkpoint: Path,
    rule: InputRule,
    context_length: int,
    training: TrainConfig,
    folds: int,
    max_new_tokens: int,
    embed: Callable[[list[str]], np.ndarray],
    judge: Judge | None = None,
) -> Scored:
    """Every call scored once by an adapter that never saw it: `calls`, oldest first, cut into `folds` consecutive
    folds, an adapter trained on the others for each (in a temporary folder, never a version). A call that does not
    fit the context is left out, as in the held-out scoring. The fold adapters answer on transformers, the engine
    the others are checked against: a converted copy of each would stay in the engines' cache for nothing."""
    from finetune.train import train_adapter  # torch's trainer, loaded only where a task is small enough to need it

    tokenizer = load_tokenizer(checkpoint)
    parts: list[Scored] = []
    for fold in np.array_split(np.arange(len(calls)), folds):
        unseen = set(fold.tolist())
        learnt = adapter_examples(tokenizer, [c for i, c in enumerate(calls) if i not in unseen], rule,
                                  min(context_length, training.max_length))
        logged, prepared = _fitting(tokenizer, [calls[i] for i in fold], rule, max_new_tokens, context_length)
        if not prepared or not learnt.examples:
            continue
        with tempfile.TemporaryDirectory(prefix="fold-") as folder:
            train_adapter(checkpoint, learnt.examples, Path(folder), training)
            engine = TransformersEngine(checkpoint, Path(folder))
            parts.append(score_model(engine, prepared, kind, max_new_tokens, embed, judge=judge, logged=logged,
                                     copying=rule.copying))
    if not parts:
        return Scored(pd.DataFrame({"score": []}), [], np.nan, np.nan)
    return Scored(
        pd.concat([p.scores for p in parts], ignore_index=True),
        [text for p in parts for text in p.predictions],
        float(np.mean([p.tokens_per_second for p in parts])),
        float(np.mean([p.seconds_per_call for p in parts])),
    )


def _base_rule(tokenizer: PreTrainedTokenizerBase, calls: Sequence[dict], adapter_rule: InputRule, reply_tokens: int,
               context_length: int, pick: PickConfig) -> InputRule:
    """What the base model reads: the prompt as logged in the adapter's window, or, where logged prompts are long
    (`pipeline.pick.reads_pruned`, as in step 4), the adapter's own input with the few-shot examples."""
    logged = np.percentile([token_count(tokenizer, prompt_text(tokenizer, c)) for c in calls], 50)
    long = reads_pruned(logged, reply_tokens, context_length, pick.score_prompt_tokens)
    return adapter_rule if long else replace(adapter_rule, pruning=NO_PRUNING)


def _fitting(tokenizer: PreTrainedTokenizerBase, calls: Sequence[dict], rule: InputRule, max_new_tokens: int,
             context_length: int) -> tuple[list[dict], list[dict]]:
    """(the calls as logged, the same prepared by `rule`) of those whose prompt and reply budget fit the context; the
    others stay with the LLM, counted."""
    pairs = [(c, rule.prepare(c)) for c in calls]
    kept = [(c, p) for c, p in pairs if fits(token_count(tokenizer, prompt_text(tokenizer, p)), max_new_tokens, context_length)]
    return [c for c, _ in kept], [p for _, p in kept]


def reply_budget(tokenizer: PreTrainedTokenizerBase, train_calls: Sequence[dict], cap: int) -> int:
    """The tokens a reply of the task may take: its training replies' p95 (with the end of turn), at most `cap`.
    Evaluation and the gateway bound generation alike."""
    return min(int(np.percentile([token_count(tokenizer, target_text(c)) + 1 for c in train_calls], 95)), cap)


def _mean_tokens(tokenizer: PreTrainedTokenizerBase, calls: Sequence[dict]) -> float:
    return float(np.mean([token_count(tokenizer, prompt_text(tokenizer, c)) for c in calls])) if calls else np.nan
