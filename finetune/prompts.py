"""The one convention that turns a logged call into model input and its reply into the training target.

Training, evaluation and serving all render through here, so an adapter always sees the input it was trained on:
- the system turn holds the call's system prompt, then the tools offered, one JSON line each;
- the conversation follows turn by turn; a tool result stays a `tool` turn;
- a tool call, in the history or as the reply, is JSON in the assistant turn: `{"name": ..., "arguments": {...}}`,
  a list of such objects for several calls;
- few-shot examples, when given, come between the system turn and the conversation as user/assistant pairs;
- the loss falls on the reply only (trl's prompt/completion split does that).

An adapter's input is the call after its `InputRule` (static text pruned, context fitted); `adapter_examples` turns a
task's training calls into that input and leaves out, counted, those too long to train on.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd
from transformers import PreTrainedTokenizerBase

from pipeline.context import InputRule, fits
from pipeline.copying import learn_copying
from pipeline.pick import split_by_time
from pipeline.pruning import learn_pruning
from pipeline.settings import PickConfig
from pipeline.tasks import reply_type

TOOL_INSTRUCTION = 'To call a tool, reply with JSON only: {"name": <tool name>, "arguments": {<arguments>}}.'


def reply_kind(call: dict) -> str:
    """`tool`, `json` or `text`: which metrics judge the reply."""
    kind = reply_type(call)
    return "tool" if kind.startswith("tool:") else kind


def target_text(call: dict) -> str:
    """The reply as the model should write it."""
    tool_calls = json.loads(call["response_tool_calls"])
    if tool_calls:
        return _tool_calls_json(tool_calls)
    return call["response_text"] or ""


def chat_messages(call: dict, examples: Sequence[dict] = ()) -> list[dict]:
    messages = json.loads(call["messages"])
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))
    tools = json.loads(call["tools"])
    if tools:
        lines = [json.dumps(t["function"], ensure_ascii=False, separators=(",", ":")) for t in tools]
        system = "\n\n".join(filter(None, [system, "Tools:\n" + "\n".join(lines), TOOL_INSTRUCTION]))
    turns = [{"role": "system", "content": system}] if system else []
    for example in examples:
        turns += [{"role": "user", "content": last_input(example)}, {"role": "assistant", "content": target_text(example)}]
    turns += [{"role": m["role"], "content": _turn_text(m)} for m in messages if m["role"] != "system"]
    return turns


def prompt_text(tokenizer: PreTrainedTokenizerBase, call: dict, examples: Sequence[dict] = ()) -> str:
    """The rendered input up to where the model starts its reply."""
    return tokenizer.apply_chat_template(chat_messages(call, examples), tokenize=False, add_generation_prompt=True)


def training_example(tokenizer: PreTrainedTokenizerBase, call: dict) -> dict[str, str]:
    """trl's prompt/completion form; trl appends the end-of-turn token to the completion."""
    return {"prompt": prompt_text(tokenizer, call), "completion": target_text(call)}


@dataclass(frozen=True)
class Examples:
    examples: list[dict[str, str]]  # trl prompt/completion pairs, the calls that fit
    tokens_full: list[int]  # prompt tokens per fitting call, as logged
    tokens: list[int]  # and as the adapter reads them
    unfit: int  # calls left out: prompt and reply longer than `max_tokens`


# Step 2's placeholders: the n-th distinct value of a type in a call is `<TYPE_n>` (pipeline.placeholders)
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)_(\d+)>")
_SPARE_NUMBERS = 4  # a type's placeholders are renumbered into 1 .. its highest number + this


def adapter_examples(tokenizer: PreTrainedTokenizerBase, calls: Sequence[dict], rule: InputRule, max_tokens: int) -> Examples:
    """Training examples of `calls` read through `rule`, each with its placeholders renumbered (`renumbered`)."""
    examples, full, pruned = [], [], []
    shuffle = random.Random(0)  # the same calls make the same examples, and the same data hash
    for call in calls:
        example = training_example(tokenizer, rule.prepare(call))
        prompt, completion = renumbered([example["prompt"], example["completion"]], shuffle)
        example = {"prompt": prompt, "completion": completion}
        length = token_count(tokenizer, example["prompt"])
        if not fits(length, token_count(tokenizer, example["completion"]) + 1, max_tokens):
            continue
        examples.append(example)
        full.append(token_count(tokenizer, prompt_text(tokenizer, call)))
        pruned.append(length)
    return Examples(examples, full, pruned, len(calls) - len(examples))


def renumbered(texts: list[str], rng: random.Random) -> list[str]:
    """`texts` (one example's prompt and reply) with each type's placeholders renumbered by one random one-to-one map,
    the same in every text. A customer's id is `<PERSON_1>` in most calls, as the first value of its type; an adapter
    trained on that learns to write `<PERSON_1>` instead of copying, and fails where a false positive earlier in the
    prompt made the id `<PERSON_2>` (3 of 24 held-out calls of the long demo's `get_user_details`)."""
    found: dict[str, set[int]] = {}
    for text in texts:
        for kind, number in _PLACEHOLDER.findall(text):
            found.setdefault(kind, set()).add(int(number))
    new = {}
    for kind, numbers in sorted(found.items()):
        targets = rng.sample(range(1, max(numbers) + _SPARE_NUMBERS + 1), len(numbers))
        new.update({(kind, n): t for n, t in zip(sorted(numbers), targets)})
    return [_PLACEHOLDER.sub(lambda m: f"<{m[1]}_{new[m[1], int(m[2])]}>", text) for text in texts]


def task_training_set(tokenizer: PreTrainedTokenizerBase, calls: pd.DataFrame, window: int, pick: PickConfig,
                      max_tokens: int) -> tuple[InputRule, Examples, int]:
    """(the adapter's input rule, its training examples, the calls held out) for a task: the rule's static text and
    copied arguments are learnt on, and the examples made of, the calls before the held-out part, in the conversation
    `window` picked."""
    train, held_out = split_by_time(calls, pick.held_out_share)
    records = train.to_dict("records")
    rule = InputRule(learn_pruning(records, pick.prune_share), pick.context(window))
    rule = replace(rule, copying=learn_copying([rule.prepare(c) for c in records], pick.copy_share))
    return rule, adapter_examples(tokenizer, records, rule, max_tokens), len(held_out)


def token_count(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Tokens of a rendered text; the chat template already wrote any special tokens into it."""
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def _turn_text(message: dict) -> str:
    if message.get("tool_calls"):
        calls = [{"name": c["function"]["name"], "arguments": _arguments(c["function"]["arguments"])} for c in message["tool_calls"]]
        return _tool_calls_json(calls)
    return message.get("content") or ""


def last_input(call: dict) -> str:
    """The request a reply answers: the call's last user message or tool result."""
    messages = json.loads(call["messages"])
    return next((_turn_text(m) for m in reversed(messages) if m["role"] in ("user", "tool")), "")


def _tool_calls_json(calls: list[dict]) -> str:
    objects = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
    return json.dumps(objects[0] if len(objects) == 1 else objects, ensure_ascii=False)


def _arguments(raw):
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return raw
