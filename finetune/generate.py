"""Batched greedy generation, timed, for scoring candidates and adapters on held-out calls."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from finetune.constrained import ReplyGuide, SchemaConstraint, reply_guide

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
    schemas: list[dict | None] | None = None, prompt_lookup: int = 0, forced_ahead: bool = False,
    read_alone: bool = True, shared: SharedStart | None = None,
) -> Generated:
    """Replies in the order of `prompts`; prompts of similar length share a batch, so little of it is padding.
    `max_time` (seconds) cuts a batch's generation short, as the gateway's latency budget does. A prompt with a JSON
    schema in `schemas` is answered under it (`finetune.constrained`).

    A prompt answered alone (the gateway's one request, or one too long to share a batch) drafts up to
    `prompt_lookup` tokens at a time from its own text where its last tokens occur there before (transformers' prompt
    lookup decoding), and the model checks the draft in one step: a tool call copies ids, names and keys from the
    conversation, so a step can bring several tokens. The model still chooses every token greedily. With
    `forced_ahead`, a structured reply answered alone is decoded by `_forced_ahead` instead. With `read_alone`, a
    padded batch's prompts are read one by one before it decodes (`_read_alone`), each from the model state of the
    start that `shared` holds for these and the prompts it saw before, so that state is computed once."""
    tokenizer.padding_side = "left"
    ids = tokenizer(prompts, add_special_tokens=False).input_ids
    lengths = [len(i) for i in ids]
    shared = shared if shared is not None and shared.read(model, ids) else None
    texts: dict[int, str] = {}
    new_tokens = 0
    started = time.perf_counter()
    for batch in batches(lengths, max_new_tokens, batch_size, batch_tokens):
        if forced_ahead and len(batch) == 1 and schemas and (guide := reply_guide(tokenizer, schemas[batch[0]])):
            reply = _forced_ahead(model, tokenizer, ids[batch[0]], guide, max_new_tokens, max_time,
                                  shared.cache() if shared else DynamicCache(config=model.config))
            new_tokens += len(reply)
            texts[batch[0]] = tokenizer.decode(reply, skip_special_tokens=True).strip()
            continue
        inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        constraint = [schemas[i] for i in batch] if schemas else []
        processors = LogitsProcessorList(
            [SchemaConstraint(tokenizer, constraint, inputs["input_ids"].shape[1])] if any(constraint) else [])
        lookup = prompt_lookup if len(batch) == 1 and prompt_lookup else None  # transformers drafts for one row only
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                max_time=max_time, logits_processor=processors, prompt_lookup_num_tokens=lookup,
                                cache=_read_alone(model, inputs, shared) if read_alone else None)
        replies = output[:, inputs["input_ids"].shape[1]:]
        new_tokens += int((replies != tokenizer.pad_token_id).sum())
        for i, reply in zip(batch, replies):
            texts[i] = tokenizer.decode(reply, skip_special_tokens=True).strip()
    return Generated([texts[i] for i in range(len(prompts))], time.perf_counter() - started, new_tokens)


@torch.inference_mode()
def _forced_ahead(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: list[int], guide: ReplyGuide,
                 max_new_tokens: int, max_time: float | None, cache: DynamicCache) -> list[int]:
    """The greedy reply to one prompt (token ids) under its schema, read from the model state `cache` holds of its
    first tokens, each model step fed the token the model chose and every token
    the schema then forces (llguidance's fast-forward tokens), so the model steps only where there is a choice.

    A tool call is mostly forced: with one tool offered, 21 of the 26 tokens of `{"name": "route_ticket",
    "arguments": {"queue": "shipping", "priority": "high"}}` (the braces, the name, the keys, the rest of a value
    once its first token settles it). A step that reads several tokens costs about what one costs on a CPU, where a
    135M model's step is bound by its 30 layers' overheads, not arithmetic. The replies are those of masked greedy
    decoding token by token (a test pins it): a forced token is the only one the mask would have left."""
    started = time.perf_counter()
    stops = {tokenizer.eos_token_id, *_as_list(model.generation_config.eos_token_id)} - {None}
    reply = guide.forced()
    feed = prompt[cache.get_seq_length():] + reply
    while len(reply) < max_new_tokens and not guide.done:
        logits = model(input_ids=torch.tensor([feed], device=model.device), past_key_values=cache, use_cache=True,
                       logits_to_keep=1).logits[0, -1:].float()
        token = int(guide.allowed(logits).argmax())
        if token in stops:
            break
        feed = guide.take(token)
        reply += feed
        if max_time is not None and time.perf_counter() - started > max_time:
            break
    return reply[:max_new_tokens]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _read_alone(model: PreTrainedModel, inputs, shared: SharedStart | None = None) -> DynamicCache | None:
    """The model state of every prompt of a padded batch but its last token, each prompt read on its own from the
    state of the start `shared` holds, gathered left-padded into one cache that `generate` continues from; None where
    the batch has no padding and there is no shared start. The cache keeps every position in every layer: a sliding
    window layer (Gemma-3's) is masked to its window by the model, whatever its cache holds.

    A prompt read alone has no padding mask, so attention takes SDPA's causal fast path: reading is compute-bound on a
    CPU and gains nothing from a batch, while the mask made it up to 1.75x slower. Decoding, which does gain from a
    batch, still runs the rows together, masked as before; every row's positions are those it would have in the
    padded batch."""
    mask = inputs["attention_mask"].bool()
    if (shared is None and (len(mask) == 1 or bool(mask.all()))) or int(mask.sum(1).min()) < 2:
        return None
    width = mask.shape[1] - 1
    rows = []
    for ids, keep in zip(inputs["input_ids"], mask):
        cache = shared.cache() if shared else DynamicCache()
        own = ids[keep][None, cache.get_seq_length():-1]
        if own.shape[1]:
            model(input_ids=own, past_key_values=cache, use_cache=True, logits_to_keep=1)
        rows.append([(layer.keys, layer.values) for layer in cache.layers])
    return DynamicCache([tuple(torch.cat([_left_padded(row[layer][i], width) for row in rows]) for i in (0, 1))
                         for layer in range(len(rows[0]))])


def _left_padded(state: torch.Tensor, width: int) -> torch.Tensor:
    """A (batch, heads, positions, dimension) key or value state with zeros before its positions, up to `width`."""
    return torch.nn.functional.pad(state, (0, 0, width - state.shape[-2], 0))


class SharedStart:
    """The tokens that every prompt read so far began with, and the model state after them, so that the start a task's
    prompts share (an agent's instructions, every tool's schema) is read once, not for each request.

    The start is learnt from the prompts, not declared: it is what they had in common so far, so it only shrinks, and
    a prompt keeps a token of its own to be read. Nothing is shared until two prompts have been read, so that one
    prompt's own text is never held as if it were the task's."""

    def __init__(self):
        self._seen: Sequence | None = None
        self._state: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: keys and values of the start's tokens

    def length(self, prompts: Sequence[Sequence]) -> int:
        """How many first tokens (ids, or CTranslate2's token strings) `prompts` and every earlier prompt share, each
        prompt keeping one of its own; 0 while only one prompt has been read."""
        first_alone = self._seen is None and len(prompts) == 1
        seen = prompts[0] if self._seen is None else self._seen
        for prompt in prompts:
            seen = seen[:_common_length(seen, prompt)]
        self._seen = seen
        return 0 if first_alone else min(len(seen), min(len(p) for p in prompts) - 1)

    def read(self, model: PreTrainedModel, prompts: list[list[int]]) -> int:
        """The length of the start `prompts` share with the earlier ones, its state now held (read here, where it is
        longer than the one held, or cut from it); 0 where nothing is shared or held."""
        length = self.length(prompts)
        held = self._state[0][0].shape[-2] if self._state else 0
        if length > held:
            cache = self.cache()  # every position in every layer, as `_read_alone` keeps them
            model(input_ids=torch.tensor([prompts[0][held:length]], device=model.device), past_key_values=cache,
                  use_cache=True, logits_to_keep=1)
            self._state = [(layer.keys, layer.values) for layer in cache.layers]
        elif length < held:
            self._state = [(keys[..., :length, :], values[..., :length, :]) for keys, values in self._state] if length else []
        return length

    def cache(self) -> DynamicCache:
        """A cache holding the start's state, for one prompt to continue: the held state itself is never changed."""
        return DynamicCache(list(self._state)) if self._state else DynamicCache()


def _common_length(a: Sequence, b: Sequence) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


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
