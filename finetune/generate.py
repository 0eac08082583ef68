"""Batched greedy generation, timed, for scoring candidates and adapters on held-out calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


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
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int, batch_size: int = 8
) -> Generated:
    """Replies in the order of `prompts`; prompts of similar length share a batch, so little of it is padding."""
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: dict[int, str] = {}
    new_tokens = 0
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(model.device)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        replies = output[:, inputs["input_ids"].shape[1]:]
        new_tokens += int((replies != tokenizer.pad_token_id).sum())
        for i, reply in zip(batch, replies):
            texts[i] = tokenizer.decode(reply, skip_special_tokens=True).strip()
    return Generated([texts[i] for i in range(len(prompts))], time.perf_counter() - started, new_tokens)
