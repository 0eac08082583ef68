"""An adapter's reply, read and checked before any caller sees it.

An adapter writes its reply in the project's convention (`finetune/prompts.py`): a tool call is the JSON
`{"name": ..., "arguments": {...}}` (several calls: a list of them), a JSON reply is the JSON text, a text reply is
text. Before the gateway returns it:

- a tool call must parse, name a tool the request offered, and have arguments valid against that tool's JSON Schema
  (`jsonschema`);
- a JSON reply, wanted by the task or by the request's `response_format`, must parse, and match the schema when
  `response_format` gives one;
- the request's `tool_choice` holds: `required` or a named function wants a call of it, `none` wants none.

Each failure has a reason, which the gateway counts and logs as it falls back to the LLM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from jsonschema import Draft202012Validator, SchemaError

from gateway.api import ChatCompletionRequest

# Why an adapter's reply was not returned; the gateway's fallback metric is labelled with these.
NOT_A_TOOL_CALL = "not_a_tool_call"
UNKNOWN_TOOL = "unknown_tool"
INVALID_ARGUMENTS = "invalid_arguments"
INVALID_JSON = "invalid_json"
SCHEMA_MISMATCH = "schema_mismatch"
TOOL_CHOICE = "tool_choice"
EMPTY = "empty"


@dataclass(frozen=True)
class Reply:
    content: str | None = None
    tool_calls: list[dict] = field(default_factory=list)  # {"name", "arguments": dict}


@dataclass(frozen=True)
class Checked:
    reply: Reply | None  # None when it failed
    reason: str = ""  # the failure's reason constant
    detail: str = ""


def check_reply(text: str, kind: str, request: ChatCompletionRequest) -> Checked:
    """Read `text` (the adapter's raw reply, for a task whose replies are `kind`: tool, json or text) as the answer to
    `request`, or say why it cannot be returned."""
    offered = {t.function.name: t.function.parameters or {} for t in request.tools or []}
    calls = _tool_calls(text) if offered else None
    choice = request.tool_choice
    if calls is not None:
        if choice == "none":
            return Checked(None, TOOL_CHOICE, "a tool call where tool_choice is none")
        if not isinstance(choice, str) and choice is not None and any(c["name"] != choice.function.name for c in calls):
            return Checked(None, TOOL_CHOICE, f"tool_choice names {choice.function.name}")
        for call in calls:
            if call["name"] not in offered:
                return Checked(None, UNKNOWN_TOOL, f"{str(call['name'])[:60]} is not among the tools offered")
            problem = _schema_problem(call["arguments"], offered[call["name"]])
            if problem:
                return Checked(None, INVALID_ARGUMENTS, f"{call['name']}: {problem}")
        return Checked(Reply(tool_calls=calls))
    if kind == "tool" or choice == "required" or not isinstance(choice, str | None):
        return Checked(None, NOT_A_TOOL_CALL, "the reply is not a tool call of the form the task needs")
    text = text.strip()
    if not text:
        return Checked(None, EMPTY, "the reply is empty")
    wanted = request.response_format.type if request.response_format else "text"
    if kind == "json" or wanted in ("json_object", "json_schema"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            return Checked(None, INVALID_JSON, f"not JSON: {error.msg}")
        schema = request.response_format.json_schema if wanted == "json_schema" else None
        problem = _schema_problem(value, schema.schema_ or {}) if schema else ""
        if problem:
            return Checked(None, SCHEMA_MISMATCH, problem)
    return Checked(Reply(content=text))


def _tool_calls(text: str) -> list[dict] | None:
    """The calls `text` holds when the whole of it is the convention's JSON, else None."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    calls = value if isinstance(value, list) and value else [value]
    parsed = []
    for call in calls:
        if not isinstance(call, dict) or set(call) != {"name", "arguments"} or not isinstance(call["name"], str):
            return None
        arguments = call["arguments"]
        if isinstance(arguments, str):  # a model may copy the OpenAI wire form, arguments as a JSON string
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return None
        if not isinstance(arguments, dict):
            return None
        parsed.append({"name": call["name"], "arguments": arguments})
    return parsed


def _schema_problem(value, schema: dict) -> str:
    """'' when `value` is valid against `schema`, else the first problem found."""
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except SchemaError as error:
        return f"the schema itself is invalid ({error.message[:80]}), so nothing can be checked against it"
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return ""
    where = "/".join(map(str, error.absolute_path)) or "the value"
    return f"{where}: {error.message[:160]}"


@lru_cache(maxsize=1024)
def _validator(schema: str) -> Draft202012Validator:
    """Agents send the same few schemas with every call: each is checked and compiled once."""
    parsed = json.loads(schema)
    Draft202012Validator.check_schema(parsed)
    return Draft202012Validator(parsed)
