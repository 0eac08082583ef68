"""Constrained decoding: a structured reply generated under its JSON schema, so that it parses and names a tool the
call offered, with arguments of that tool's schema.

A call whose logged reply is a tool call or JSON gets a schema (`reply_schema`): for a tool call, one of the tools the
call offers, `{"name": <that tool>, "arguments": <its parameters>}` (or a list of them, for parallel calls), in the
project's rendering of tool calls (`finetune.prompts`); for JSON, an object or an array. A text reply gets none.

llguidance (the library behind guidance, and llama.cpp's and vLLM's JSON-schema decoding) turns the schema into a
token mask per step, applied to transformers' logits by `SchemaConstraint`, a `LogitsProcessor`. Separators are
those of `json.dumps`, the ones training targets are written with, so a fine-tuned adapter is not pushed off the
tokens it learnt. A schema llguidance cannot compile leaves its reply unconstrained, and the reply is then only
checked (`conforms`).
"""

from __future__ import annotations

import json
import logging
from functools import cache

import jsonschema
import llguidance
import llguidance.hf
import llguidance.torch
import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

from pipeline.copying import CopyRule


# json.dumps' separators, which `finetune.prompts.target_text` writes training replies with
FORMAT = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False, "lenient": True}


def reply_schema(call: dict, kind: str, copying: CopyRule = CopyRule(), read: dict | None = None) -> dict | None:
    """The JSON schema a reply of `kind` (`tool`, `json` or `text`, `finetune.prompts.reply_kind`) to `call` must
    follow; None for text. A tool call names one of the tools the call offers; an argument `copying` says the task's
    replies copy is one of the words of `read`, the call as the model reads it (`pipeline.copying`)."""
    if kind == "json":
        return {"type": ["object", "array"]}
    if kind != "tool":
        return None
    tools = [copying.narrowed(t["function"], read or call)
             for t in json.loads(call["tools"] or "[]") if isinstance(t.get("function"), dict)]
    if not tools and "response_tool_calls" in call:  # a log that kept the call, not the offer: the logged tool's name
        tools = [{"name": c["name"]} for c in json.loads(call["response_tool_calls"])[:1]]
    one = {"anyOf": [_tool_call(tool) for tool in tools]} if tools else {"type": "object"}
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 2}]}


def _tool_call(tool: dict) -> dict:
    parameters = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else {"type": "object"}
    return {"type": "object", "properties": {"name": {"const": tool["name"]}, "arguments": parameters},
            "required": ["name", "arguments"], "additionalProperties": False}


def conforms(text: str, schema: dict | None) -> bool:
    """Whether `text` is JSON that follows `schema` (any text where there is none). A schema that is not itself
    valid (a tool's broken parameters) is checked as far as it can be: the text must parse."""
    if schema is None:
        return True
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    except jsonschema.SchemaError:
        return True
    return True


class SchemaConstraint(LogitsProcessor):
    """Masks, row by row, every token that would leave the row's schema; a row without a schema is left free.
    Made for one `generate` call on one batch: `prompt_length` is where the replies start.

    Each call brings each row's reply as it stands, which need not be the last one's plus a token: assisted decoding
    (`prompt_lookup_num_tokens`) asks about drafted tokens, then takes back the ones the model did not confirm. Each
    row's matcher is rolled back to what the two replies share, then fed what is new."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, schemas: list[dict | None], prompt_length: int):
        guide = _guidance_tokenizer(tokenizer)
        self.matchers = [_matcher(guide, schema) for schema in schemas]
        self.consumed: list[list[int]] = [[] for _ in schemas]  # the reply tokens each matcher has been fed
        self.bitmask = llguidance.torch.allocate_token_bitmask(len(schemas), guide.vocab_size)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = [i for i, matcher in enumerate(self.matchers) if matcher is not None]
        for i in rows:
            self._follow(i, input_ids[i, self.prompt_length:].tolist())
            llguidance.torch.fill_next_token_bitmask(self.matchers[i], self.bitmask, i)
        if rows:
            masked = scores[rows].contiguous()
            llguidance.torch.apply_token_bitmask_inplace(masked, self.bitmask[rows])
            scores[rows] = masked
        return scores

    def _follow(self, row: int, reply: list[int]) -> None:
        matcher, consumed = self.matchers[row], self.consumed[row]
        shared = next((n for n, (a, b) in enumerate(zip(consumed, reply)) if a != b), min(len(consumed), len(reply)))
        if shared < len(consumed):
            matcher.rollback(len(consumed) - shared)
            del consumed[shared:]
        for token in reply[shared:]:
            # the end-of-turn token and the padding after it are not the grammar's
            if matcher.is_stopped() or not matcher.consume_token(token):
                break
            consumed.append(token)


class ReplyGuide:
    """One structured reply followed through its schema by a decoding loop of its own (`finetune.generate`): the
    tokens it allows next, and those it forces, which need no choice by the model."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int):
        self.matcher = matcher
        self.bitmask = llguidance.torch.allocate_token_bitmask(1, vocab_size)

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` (one row) with every token that would leave the schema masked out, in place."""
        llguidance.torch.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        llguidance.torch.apply_token_bitmask_inplace(logits, self.bitmask)
        return logits

    def take(self, token: int) -> list[int]:
        """Feeds the model's `token`, then the tokens the schema forces after it: `token` and those."""
        self.matcher.consume_token(token)
        return [token, *self.forced()]

    def forced(self) -> list[int]:
        tokens = self.matcher.compute_ff_tokens()
        self.matcher.consume_tokens(tokens)
        return tokens

    @property
    def done(self) -> bool:
        return self.matcher.is_stopped()


def reply_guide(tokenizer: PreTrainedTokenizerBase, schema: dict | None) -> ReplyGuide | None:
    """A guide for one reply under `schema`; None where there is none, or llguidance cannot compile it."""
    guide = _guidance_tokenizer(tokenizer)
    matcher = _matcher(guide, schema)
    return ReplyGuide(matcher, guide.vocab_size) if matcher else None


@cache
def _guidance_tokenizer(tokenizer: PreTrainedTokenizerBase) -> llguidance.LLTokenizer:
    return llguidance.hf.from_tokenizer(tokenizer)  # about a second: once per tokenizer


def _matcher(guide: llguidance.LLTokenizer, schema: dict | None) -> llguidance.LLMatcher | None:
    if schema is None:
        return None
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=FORMAT)
    matcher = llguidance.LLMatcher(guide, grammar)
    if matcher.is_error():
        logging.getLogger(__name__).warning(f"a reply schema llguidance cannot follow, left free: {matcher.get_error()}")
        return None
    return matcher
