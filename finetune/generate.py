"""Batched greedy generation, timed, for scoring candidates and adapters on held-out calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from finetune.constrained import SchemaConstraint

# On 2 CPU cores a batch of 20 generated 1.9x the tokens per second of a batch of 8: a decoding step reads every
# weight once for the whole batch. Reading the prompts gains nothing from it (compute-bound), and a batch's padding
# mask makes attention over long prompts up to 1.75x slower, so the token bound keeps long prompts in small batches
# and one of 4k tokens alone: 1.0-1.2x faster than 32,768 up to 2k prompt tokens, 1.67x at 4.7k (bench/batching.py).
BATCH_SIZE = 32
BATCH_TOKENS = 8_192


@dataclass(frozen=True)
class Generated:
    texts: list[str]
    seconds: float
    new_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0

    @property
    def seconds_per_call(self) -> float:
        return self.seconds / len(self.texts) if self.texts else 0.0


@torch.inference_mode()
def generate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int,
    batch_size: int = BATCH_SIZE, batch_tokens: int = BATCH_TOKENS, max_time: float | None = None,
    schemas: list[dict | None] | None = None, prompt_lookup: int = 0,
) -> Generated:
    """Replies in the order of `prompts`; prompts of similar length share a batch, so little of it is padding.
    `max_time` (seconds) cuts a batch's generation short, as the gateway's latency budget does. A prompt with a JSON
    schema in `schemas` is answered under it (`finetune.constrained`).

    A prompt answered alone (the gateway's one request, or one too long to share a batch) drafts up to
    `prompt_lookup` tokens at a time from its own text where its last tokens occur there before (transformers' prompt
    lookup decoding), and the model checks the draft in one step: a tool call copies ids, names and keys from the
    conversation, so a step can bring several tokens. The model still chooses every token greedily."""
    tokenizer.padding_side = "left"
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False).input_ids]
    texts: dict[int, str] = {}
    new_tokens = 0
    started = time.perf_counter()
    for batch in batches(lengths, max_new_tokens, batch_size, batch_tokens):
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        constraint = [schemas[i] for i in batch] if schemas else []
        processors = LogitsProcessorList(
            [SchemaConstraint(tokenizer, constraint, inputs["input_ids"].shape[1])] if any(constraint) else [])
        lookup = prompt_lookup if len(batch) == 1 and prompt_lookup else None  # transformers drafts for one row only
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                max_time=max_time, logits_processor=processors, prompt_lookup_num_tokens=lookup)
        replies = output[:, inputs["input_ids"].shape[1]:]
        new_tokens += int((replies != tokenizer.pad_token_id).sum())
        for i, reply in zip(batch, replies):
            texts[i] = tokenizer.decode(reply, skip_special_tokens=True).strip()
    return Generated([texts[i] for i in range(len(prompts))], time.perf_counter() - started, new_tokens)


def batches(lengths: list[int], max_new_tokens: int, batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Indexes of the prompts, shortest first, in batches of at most `batch_size` whose padded length (the longest
    prompt plus the reply budget, per row) stays within `batch_tokens`; a prompt longer than that is a batch alone."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        rows = len(groups[-1]) + 1 if groups else 0
        if groups and rows <= batch_size and rows * (lengths[i] + max_new_tokens) <= batch_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
