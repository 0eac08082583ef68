"""Recognize one log record's format and turn it into canonical calls.

Formats read (field names in FORMATS.md):
- `request_response`: `{timestamp, workload_id?, client_id?, request, response}` (NVIDIA data-flywheel), and
  OpenPipe's `{requestedAt, receivedAt, reqPayload, respPayload, statusCode, tags}`;
- `transcript`: `{messages, tools?}`, one call per assistant turn;
- `otel_span`: OpenTelemetry GenAI spans, one OTLP export (`resourceSpans`) or one span per record;
- `legacy_function_call`: any of the above in OpenAI's older `functions` / `function_call` form.

Canonical messages follow the OpenAI chat format (tool-call arguments as a JSON string), so later steps can feed
them to a chat template unchanged; the reply's tool calls carry their arguments parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MODEL_OPERATIONS = {"chat", "text_completion", "generate_content"}


class Quarantined(Exception):
    """A record that cannot become a call; the message is the quarantine reason."""


@dataclass
class Call:
    format: str
    messages: list[dict]
    tools: list[dict]
    response_text: str | None
    response_tool_calls: list[dict]
    finish_reason: str | None
    called_at: datetime | None = None
    model: str | None = None
    session_id: str | None = None
    workload: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    turn: int = 0


@dataclass
class Parsed:
    """What one log record held: calls, per-call rejections, and spans that were not model calls."""

    calls: list[Call] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    skipped_spans: int = 0


def parse_record(record: Any) -> Parsed:
    """Parse one decoded JSON line; raise `Quarantined` when the whole record is unusable."""
    if not isinstance(record, dict):
        raise Quarantined(f"unknown format: a JSON {type(record).__name__}, not an object")
    if "resourceSpans" in record:
        return _parse_otlp_export(record)
    if "attributes" in record and ("spanId" in record or "context" in record or "name" in record):
        return _parse_spans([record])
    if "request" in record:
        return Parsed(calls=[_parse_flywheel(record)])
    if "reqPayload" in record:
        return Parsed(calls=[_parse_openpipe(record)])
    if "messages" in record:
        return _parse_transcript(record)
    keys = ", ".join(sorted(record)[:8]) or "none"
    raise Quarantined(f"unknown format (keys: {keys})")


def record_time(record: Any) -> datetime | None:
    """The call time a record states, if any: also used to place a quarantined record on its day."""
    stated = stated_time(record)
    return None if stated is None else parse_time(stated)


def stated_time(record: Any) -> Any:
    """The value a record gives as its call time, as written; None where it gives none."""
    if not isinstance(record, dict):
        return None
    for key in ("timestamp", "created_at", "requestedAt", "startTimeUnixNano", "start_time"):
        if record.get(key) is not None:
            return record[key]
    metadata = record.get("metadata")
    if isinstance(metadata, dict) and metadata.get("timestamp") is not None:
        return metadata["timestamp"]
    return None


def parse_time(value: Any) -> datetime | None:
    """Epoch seconds, milliseconds or nanoseconds, or ISO 8601, as naive UTC."""
    try:
        if isinstance(value, str) and not value.lstrip("-").replace(".", "", 1).isdigit():
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
            return moment
        number = float(value)
    except (TypeError, ValueError):
        return None
    for scale in (1, 1e3, 1e6, 1e9):  # seconds before year 5138, then ms, µs, ns
        if abs(number) / scale < 1e11:
            try:
                return datetime.fromtimestamp(number / scale, tz=timezone.utc).replace(tzinfo=None)
            except (OverflowError, OSError, ValueError):  # before year 1: no time at all
                return None
    return None


def canonical_request(request: dict) -> tuple[list[dict], list[dict]]:
    """A chat request's messages and tools as a call holds them: what the gateway reads a live call as, the same way
    this step reads a logged one."""
    if not isinstance(request.get("messages"), list):
        raise Quarantined("request has no messages list")
    return [_canonical_message(m) for m in request["messages"]], _canonical_tools(request)


# --- request/response records -------------------------------------------------------------------


def _parse_flywheel(record: dict) -> Call:
    if record.get("error_details"):
        raise Quarantined(f"LLM call failed: {str(record['error_details'])[:120]}")
    response = record.get("response")
    served_by = record.get("served_by")
    if isinstance(served_by, str) and served_by != "llm":
        # the gateway's record of a call an adapter answered: a model learns from the LLM's reply, never its own
        response = (record.get("llm") or {}).get("response")
        if response is None:
            raise Quarantined(f"served by the adapter {served_by[:40]}: no LLM reply to learn from")
    if response is None:
        raise Quarantined("call without a response")
    call = _from_openai(record["request"], response)
    call.called_at = record_time(record)
    call.workload = record.get("workload_id")
    call.session_id = record.get("session_id") or record.get("client_id")
    call.latency_ms = _number(record.get("latency_ms"))
    call.cost_usd = _number(record.get("cost") or record.get("response_cost"))
    return call


def _parse_openpipe(record: dict) -> Call:
    status = record.get("statusCode")
    status = int(status) if isinstance(status, str) and status.strip().isdigit() else status  # "503" as logged
    if record.get("errorMessage") or (isinstance(status, int) and status >= 400):
        raise Quarantined(f"LLM call failed: status {status} {str(record.get('errorMessage') or '')[:100]}")
    if record.get("respPayload") is None:
        raise Quarantined("call without a response")
    call = _from_openai(record["reqPayload"], record["respPayload"])
    call.called_at = parse_time(record.get("requestedAt"))
    received = parse_time(record.get("receivedAt"))
    if call.called_at and received:
        call.latency_ms = (received - call.called_at).total_seconds() * 1000
    tags = record.get("tags") or {}
    call.workload = tags.get("prompt_id")
    call.session_id = tags.get("session_id")
    return call


def _from_openai(request: Any, response: Any) -> Call:
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        raise Quarantined("request has no messages list")
    if isinstance(response, list) or (isinstance(response, dict) and response.get("object") == "chat.completion.chunk"):
        response = _join_stream(response if isinstance(response, list) else [response])
    if not isinstance(response, dict) or not response.get("choices"):
        raise Quarantined("response has no choices")
    choice = response["choices"][0]
    message = choice.get("message") or {}
    reply = _canonical_message({**message, "role": "assistant"})
    text, tool_calls = _reply_parts(reply)
    usage = response.get("usage") or {}
    return Call(
        format=_format_name("request_response", request, [message]),
        messages=[_canonical_message(m) for m in request["messages"]],
        tools=_canonical_tools(request),
        response_text=text,
        response_tool_calls=tool_calls,
        finish_reason=choice.get("finish_reason"),
        model=response.get("model") or request.get("model"),
        prompt_tokens=_integer(usage.get("prompt_tokens")),
        completion_tokens=_integer(usage.get("completion_tokens")),
    )


def _join_stream(chunks: list[dict]) -> dict:
    """Join `chat.completion.chunk` pieces into the one completion a non-streaming call would have logged."""
    content: list[str] = []
    tool_calls: dict[int, dict] = {}
    finish_reason = None
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") or "")
            for piece in delta.get("tool_calls") or []:
                slot = tool_calls.setdefault(piece.get("index", 0), {"id": None, "name": "", "arguments": ""})
                slot["id"] = piece.get("id") or slot["id"]
                function = piece.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            finish_reason = choice.get("finish_reason") or finish_reason
    message: dict = {"role": "assistant", "content": "".join(content) or None}
    if tool_calls:
        message["tool_calls"] = [
            {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": t["arguments"]}}
            for _, t in sorted(tool_calls.items())
        ]
    last = chunks[-1] if chunks else {}
    return {
        "model": last.get("model"),
        "usage": next((c["usage"] for c in reversed(chunks) if c.get("usage")), None),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }


# --- transcripts ---------------------------------------------------------------------------------


def _parse_transcript(record: dict) -> Parsed:
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Quarantined("messages is not a list of objects")
    canonical = [_canonical_message(m) for m in messages]
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    session = metadata.get("conversation_id") or record.get("conversation_id") or record.get("session_id")
    format_name = _format_name("transcript", record, messages)
    tools = _canonical_tools(record)
    parsed = Parsed()
    turn = -1
    for index, message in enumerate(canonical):
        if message["role"] != "assistant":
            continue
        turn += 1
        text, tool_calls = _reply_parts(message)
        if text is None and not tool_calls:
            parsed.quarantined.append(f"call without a response: assistant turn {turn} is empty")
            continue
        parsed.calls.append(
            Call(
                format=format_name,
                messages=canonical[:index],
                tools=tools,
                response_text=text,
                response_tool_calls=tool_calls,
                finish_reason="tool_calls" if tool_calls else "stop",
                called_at=record_time(record),
                model=record.get("model") or metadata.get("model"),
                session_id=session,
                workload=metadata.get("workload_id") or record.get("workload_id"),
                turn=turn,
            )
        )
    if not parsed.calls and not parsed.quarantined:
        raise Quarantined("call without a response: the transcript has no assistant turn")
    return parsed


# --- OpenTelemetry GenAI spans -------------------------------------------------------------------


def _parse_otlp_export(record: dict) -> Parsed:
    spans = [
        span
        for resource in record.get("resourceSpans") or []
        for scope in resource.get("scopeSpans") or []
        for span in scope.get("spans") or []
    ]
    if not spans:
        raise Quarantined("OTLP export holds no spans")
    return _parse_spans(spans)


def _parse_spans(spans: list[dict]) -> Parsed:
    parsed = Parsed()
    for span in spans:
        attributes = _span_attributes(span.get("attributes"))
        operation = attributes.get("gen_ai.operation.name") or str(span.get("name", "")).split(" ")[0]
        if operation not in MODEL_OPERATIONS:
            parsed.skipped_spans += 1
            continue
        try:
            parsed.calls.append(_span_call(span, attributes))
        except Quarantined as unusable:
            parsed.quarantined.append(str(unusable))
    if not parsed.calls and not parsed.quarantined and not parsed.skipped_spans:
        raise Quarantined("span export holds no spans")
    return parsed


def _span_call(span: dict, attributes: dict) -> Call:
    inputs = _json_attribute(attributes, "gen_ai.input.messages")
    outputs = _json_attribute(attributes, "gen_ai.output.messages")
    if inputs is None and outputs is None:
        inputs, outputs = _messages_from_events(span.get("events") or [])
    if not outputs:
        raise Quarantined("call without a response: the span carries no output messages (content capture off?)")
    messages = [m for part_message in inputs or [] for m in _otel_to_openai(part_message)]
    instructions = _json_attribute(attributes, "gen_ai.system_instructions")
    if instructions:
        messages.insert(0, {"role": "system", "content": _parts_text(instructions)})
    reply = _otel_to_openai({**outputs[0], "role": "assistant"})[0]
    text, tool_calls = _reply_parts(reply)
    reasons = attributes.get("gen_ai.response.finish_reasons")
    start = parse_time(span.get("startTimeUnixNano") or span.get("start_time"))
    end = parse_time(span.get("endTimeUnixNano") or span.get("end_time"))
    definitions = _json_attribute(attributes, "gen_ai.tool.definitions") or []
    context = span.get("context") if isinstance(span.get("context"), dict) else {}
    return Call(
        format="otel_span",
        messages=messages,
        tools=[_canonical_tool(t) for t in definitions if isinstance(t, dict)],
        response_text=text,
        response_tool_calls=tool_calls,
        finish_reason=outputs[0].get("finish_reason") or (reasons[0] if isinstance(reasons, list) and reasons else reasons),
        called_at=start,
        model=attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"),
        session_id=attributes.get("gen_ai.conversation.id") or span.get("traceId") or context.get("trace_id"),
        workload=attributes.get("gen_ai.agent.name") or span.get("name"),
        prompt_tokens=_integer(attributes.get("gen_ai.usage.input_tokens", attributes.get("gen_ai.usage.prompt_tokens"))),
        completion_tokens=_integer(
            attributes.get("gen_ai.usage.output_tokens", attributes.get("gen_ai.usage.completion_tokens"))
        ),
        latency_ms=(end - start).total_seconds() * 1000 if start and end else None,
    )


def _span_attributes(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    return {item["key"]: _otlp_value(item.get("value") or {}) for item in raw or [] if "key" in item}


def _otlp_value(value: dict) -> Any:
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values") or []]
    if "intValue" in value:
        return int(value["intValue"])
    for key in ("stringValue", "doubleValue", "boolValue"):
        if key in value:
            return value[key]
    return None


def _json_attribute(attributes: dict, key: str) -> Any:
    value = attributes.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise Quarantined(f"{key} is not valid JSON: {error.msg}") from None
    return value


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _messages_from_events(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """Older instrumentations logged content as span events, one per message, and `gen_ai.choice` for the reply."""
    inputs, outputs = [], []
    for event in events:
        body = _span_attributes(event.get("attributes"))
        content = body.get("content") or body.get("gen_ai.event.content")
        if isinstance(content, str) and content.startswith("{"):
            content = json.loads(content)
        if event.get("name") == "gen_ai.choice":
            message = content.get("message", content) if isinstance(content, dict) else {"content": content}
            outputs.append({**_openai_to_otel(message), "finish_reason": body.get("finish_reason")})
        elif event.get("name") in _EVENT_ROLES:
            message = content if isinstance(content, dict) else {"content": content}
            inputs.append({**_openai_to_otel(message), "role": _EVENT_ROLES[event["name"]]})
    return inputs, outputs


def _openai_to_otel(message: dict) -> dict:
    parts: list[dict] = []
    if message.get("content"):
        parts.append({"type": "text", "content": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"), "arguments": function.get("arguments")})
    return {"role": message.get("role"), "parts": parts}


def _otel_to_openai(message: dict) -> list[dict]:
    """An OTel message holds typed parts; tool responses become one OpenAI `tool` message each."""
    role = message.get("role", "user")
    parts = message.get("parts") or []
    responses = [p for p in parts if p.get("type") == "tool_call_response"]
    if responses:
        return [
            {"role": "tool", "tool_call_id": p.get("id"), "content": _as_text(p.get("response"))} for p in responses
        ]
    converted: dict = {"role": role, "content": _parts_text(parts)}
    tool_calls = [
        {"id": p.get("id"), "type": "function", "function": {"name": p.get("name"), "arguments": _as_text(p.get("arguments") or {})}}
        for p in parts
        if p.get("type") == "tool_call"
    ]
    if tool_calls:
        converted["tool_calls"] = tool_calls
    if message.get("name"):
        converted["name"] = message["name"]
    return [converted]


def _parts_text(parts: list) -> str | None:
    texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text" and p.get("content")]
    return "\n".join(texts) if texts else None


# --- shared normalization ------------------------------------------------------------------------


def _canonical_message(message: dict) -> dict:
    role = message.get("role")
    if role not in {"system", "developer", "user", "assistant", "tool", "function"}:
        raise Quarantined(f"message with unknown role {str(role)[:40]!r}")
    canonical: dict = {"role": "system" if role == "developer" else role, "content": _content_text(message.get("content"))}
    tool_calls = [_canonical_tool_call(c, i) for i, c in enumerate(message.get("tool_calls") or [])]
    if message.get("function_call"):
        tool_calls.append(_canonical_tool_call({"function": message["function_call"]}, len(tool_calls)))
    if tool_calls:
        canonical["tool_calls"] = tool_calls
    if role == "function":  # legacy result of a function call
        canonical.update(role="tool", name=message.get("name"), tool_call_id=message.get("tool_call_id"))
    for key in ("name", "tool_call_id"):
        if message.get(key) and key not in canonical:
            canonical[key] = message[key]
    return canonical


def _content_text(content: Any) -> str | None:
    """Content is a string or a list of typed parts; non-text parts leave a marker so nothing vanishes silently."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                pieces.append(part.get("text") or "")
            elif isinstance(part, dict):
                pieces.append(f"[{part.get('type', 'part')}]")
        return "\n".join(pieces)
    return json.dumps(content, ensure_ascii=False)


def _canonical_tool_call(call: dict, index: int) -> dict:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # the newer data-flywheel contract logs arguments as an object
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    return {
        "id": call.get("id") or f"call_{index}",
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


def _reply_parts(message: dict) -> tuple[str | None, list[dict]]:
    """The reply's text and its tool calls with arguments parsed (kept as the raw string when not valid JSON)."""
    tool_calls = []
    for call in message.get("tool_calls") or []:
        raw = call["function"]["arguments"]
        try:
            arguments = json.loads(raw)
        except json.JSONDecodeError:
            arguments = raw
        tool_calls.append({"id": call["id"], "name": call["function"]["name"], "arguments": arguments})
    text = message.get("content")
    return (text if text != "" else None), tool_calls


def _canonical_tools(request: dict) -> list[dict]:
    tools = request.get("tools") or request.get("functions") or []
    return [_canonical_tool(t) for t in tools if isinstance(t, dict)]


def _canonical_tool(tool: dict) -> dict:
    function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    return {
        "type": "function",
        "function": {
            "name": function.get("name"),
            "description": function.get("description") or "",
            "parameters": function.get("parameters") or {},
        },
    }


def _format_name(base: str, container: dict, messages: list) -> str:
    legacy = "functions" in container or any(
        isinstance(m, dict) and (m.get("function_call") or m.get("role") == "function") for m in messages
    )
    return "legacy_function_call" if legacy else base


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _integer(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
