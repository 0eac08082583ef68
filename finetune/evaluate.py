"""Score a model on held-out calls against the LLM's own logged replies (steps 4 and 6).

Generation is bounded by the task's reply length, so a model that never stops costs a bounded time and scores low
rather than hanging the run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from finetune.generate import generate
from finetune.prompts import prompt_text, target_text
from pipeline.metrics import score_replies

MAX_NEW_TOKENS = 512


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
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    calls: Sequence[dict],
    kind: str,
    max_new_tokens: int,
    embed: Callable[[list[str]], np.ndarray],
    examples: Sequence[Sequence[dict]] | None = None,
) -> Scored:
    """Generate each call's reply (with its few-shot `examples`, if given) and score it against the logged one."""
    prompts = [prompt_text(tokenizer, call, examples[i] if examples else ()) for i, call in enumerate(calls)]
    generated = generate(model, tokenizer, prompts, min(max_new_tokens, MAX_NEW_TOKENS))
    scores = score_replies(kind, [target_text(call) for call in calls], generated.texts, embed)
    return Scored(scores, generated.texts, generated.tokens_per_second, generated.seconds_per_call)


def nearest_examples(queries: np.ndarray, pool: np.ndarray, pool_calls: Sequence[dict], k: int) -> list[list[dict]]:
    """For each query embedding, the `k` most similar pool calls (embeddings are unit length), nearest last so it
    sits next to the call it illustrates."""
    if k == 0 or not len(pool_calls):
        return [[] for _ in range(len(queries))]
    nearest = np.argsort(-(queries @ pool.T), axis=1)[:, :k]
    return [[pool_calls[j] for j in reversed(row)] for row in nearest]
