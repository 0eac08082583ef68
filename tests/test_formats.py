import json

import pytest

from pipeline.formats import Quarantined, parse_record, parse_time

REQUEST = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Route the ticket."},
        {"role": "user", "content": "I was charged twice for order AC-123456."},
    ],
    "tools": [{"type": "function", "function": {"name": "route_ticket", "parameters": {"type": "object"}}}],
}


def completion(message: dict, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }


def route_call(arguments) -> dict:
    return {"id": "call_9", "type": "function", "function": {"name": "route_ticket", "arguments": arguments}}


def test_request_response_record_becomes_one_call_with_parsed_tool_arguments():
    record = {
        "timestamp": 1762300000,
        "workload_id": "ticket_routing",
        "client_id": "acme",
        "request": REQUEST,
        "response": completion({"content": None, "tool_calls": [route_call('{"queue": "billing"}')]}, "tool_calls"),
    }
    [call] = parse_record(record).calls
    assert call.format == "request_response"
    assert call.response_tool_calls == [{"id": "call_9", "name": "route_ticket", "arguments": {"queue": "billing"}}]
    assert call.response_text is None
    assert call.finish_reason == "tool_calls"
    assert call.workload == "ticket_routing"
    assert call.model == "gpt-4o-2024-08-06"
    assert (call.prompt_tokens, call.completion_tokens) == (42, 7)
    assert call.called_at.isoformat() == "2025-11-04T23:46:40"
    assert [m["role"] for m in call.messages] == ["system", "user"]
    assert call.tools[0]["function"]["name"] == "route_ticket"


def test_tool_arguments_logged_as_an_object_are_accepted():
    record = {"request": REQUEST, "response": completion({"tool_calls": [route_call({"queue": "billing"})]})}
    [call] = parse_record(record).calls
    assert call.response_tool_calls[0]["arguments"] == {"queue": "billing"}


def test_a_call_an_adapter_served_is_learnt_from_the_llms_reply_or_not_at_all():
    adapter_reply = completion({"tool_calls": [route_call({"queue": "sales"})]})
    llm_reply = completion({"tool_calls": [route_call({"queue": "billing"})]})
    audited = {"request": REQUEST, "response": adapter_reply, "served_by": "task-002/v3", "llm": {"response": llm_reply}}
    served = {"request": REQUEST, "response": adapter_reply, "served_by": "task-002/v3"}

    [call] = parse_record(audited).calls
    assert call.response_tool_calls[0]["arguments"] == {"queue": "billing"}
    with pytest.raises(Quarantined, match="served by the adapter task-002/v3: no LLM reply to learn from"):
        parse_record(served)
    assert parse_record({**served, "served_by": "llm"}).calls[0].response_tool_calls[0]["arguments"] == {"queue": "sales"}


def test_streamed_chunks_are_joined_into_one_reply():
    chunks = [
        {"object": "chat.completion.chunk", "model": "m", "choices": [{"delta": {"content": "order_"}}]},
        {"object": "chat.completion.chunk", "model": "m", "choices": [{"delta": {"content": "status"}, "finish_reason": "stop"}]},
    ]
    [call] = parse_record({"request": REQUEST, "response": chunks}).calls
    assert call.response_text == "order_status"
    assert call.finish_reason == "stop"


def test_openpipe_record_gives_latency_and_task_hint():
    record = {
        "requestedAt": 1762300000000,
        "receivedAt": 1762300001250,
        "reqPayload": REQUEST,
        "respPayload": completion({"content": "billing"}),
        "statusCode": 200,
        "tags": {"prompt_id": "routing"},
    }
    [call] = parse_record(record).calls
    assert call.latency_ms == 1250
    assert call.workload == "routing"


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"timestamp": 1, "request": REQUEST}, "call without a response"),
        ({"request": REQUEST, "response": completion({"content": "x"}), "error_details": "rate limited"}, "LLM call failed"),
        ({"reqPayload": REQUEST, "respPayload": None, "statusCode": 500, "errorMessage": "boom"}, "LLM call failed"),
        ({"event": "heartbeat"}, r"unknown format \(keys: event\)"),
        ([1, 2], "unknown format"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "call without a response"),
        ({"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]}, "unknown role"),
    ],
)
def test_unusable_records_are_rejected_with_a_reason(record, reason):
    with pytest.raises(Quarantined, match=reason):
        parse_record(record)


def test_transcript_splits_into_one_call_per_assistant_turn():
    messages = [
        {"role": "system", "content": "You help with orders."},
        {"role": "user", "content": "Where is AC-123456?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "AC-123456"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "It has shipped."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ]
    parsed = parse_record({"messages": messages, "metadata": {"conversation_id": "conv-1", "timestamp": "2026-11-03T10:00:00Z"}})
    assert [len(c.messages) for c in parsed.calls] == [2, 4, 6]
    assert [c.turn for c in parsed.calls] == [0, 1, 2]
    assert parsed.calls[0].response_tool_calls[0]["arguments"] == {"order_id": "AC-123456"}
    assert parsed.calls[1].messages[-1]["role"] == "tool"
    assert parsed.calls[2].response_text == "You're welcome."
    assert {c.session_id for c in parsed.calls} == {"conv-1"}
    assert parsed.calls[0].called_at.isoformat() == "2026-11-03T10:00:00"


def test_empty_assistant_turn_is_rejected_and_the_other_turns_kept():
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "ok"}]
    parsed = parse_record({"messages": messages})
    assert [c.response_text for c in parsed.calls] == ["ok"]
    assert parsed.quarantined == ["call without a response: assistant turn 0 is empty"]


def test_legacy_function_call_is_normalized_to_tool_calls():
    record = {
        "functions": [{"name": "get_weather", "description": "Weather.", "parameters": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"role": "function", "name": "get_weather", "content": '{"temp": 18}'},
            {"role": "assistant", "content": "18 degrees."},
        ],
    }
    first, second = parse_record(record).calls
    assert first.format == second.format == "legacy_function_call"
    assert first.tools == [{"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {"type": "object"}}}]
    assert first.response_tool_calls[0] == {"id": "call_0", "name": "get_weather", "arguments": {"city": "Paris"}}
    assert second.messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second.messages[2]["role"] == "tool" and second.messages[2]["name"] == "get_weather"


def otlp_attribute(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def otel_span(operation="chat", **extra):
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": "conv-7",
        "gen_ai.agent.name": "order_lookup",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 9,
        "gen_ai.response.finish_reasons": ["tool_call"],
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "You look up orders."}]),
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Where is AC-654321?"}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", "name": "lookup_order", "arguments": {"order_id": "AC-654321"}}], "finish_reason": "tool_call"}]
        ),
        "gen_ai.tool.definitions": json.dumps([{"type": "function", "name": "lookup_order", "description": "Find an order.", "parameters": {"type": "object"}}]),
        **extra,
    }
    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": f"{operation} gpt-4o",
        "startTimeUnixNano": "1762300000000000000",
        "endTimeUnixNano": "1762300000850000000",
        "attributes": [otlp_attribute(k, v) for k, v in attributes.items()],
    }


def test_otlp_export_gives_one_call_per_model_span_and_skips_tool_spans():
    export = {"resourceSpans": [{"scopeSpans": [{"spans": [otel_span(), otel_span("execute_tool")]}]}]}
    parsed = parse_record(export)
    assert parsed.skipped_spans == 1
    [call] = parsed.calls
    assert call.format == "otel_span"
    assert call.messages == [{"role": "system", "content": "You look up orders."}, {"role": "user", "content": "Where is AC-654321?"}]
    assert call.response_tool_calls == [{"id": "t1", "name": "lookup_order", "arguments": {"order_id": "AC-654321"}}]
    assert call.tools[0]["function"]["name"] == "lookup_order"
    assert call.latency_ms == pytest.approx(850)
    assert (call.prompt_tokens, call.completion_tokens, call.session_id, call.workload) == (120, 9, "conv-7", "order_lookup")


def test_single_span_with_attributes_as_a_dict_is_read():
    span = otel_span()
    span["attributes"] = {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}
    [call] = parse_record(span).calls
    assert call.response_tool_calls[0]["name"] == "lookup_order"


def test_span_without_captured_content_is_rejected_not_dropped():
    span = otel_span()
    span["attributes"] = [a for a in span["attributes"] if a["key"] not in ("gen_ai.input.messages", "gen_ai.output.messages")]
    parsed = parse_record({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    assert parsed.calls == [] and "no output messages" in parsed.quarantined[0]


def test_span_events_of_older_instrumentations_are_read():
    span = otel_span()
    span["attributes"] = [a for a in span["attributes"] if a["key"].startswith("gen_ai.usage") or a["key"] == "gen_ai.operation.name"]
    span["events"] = [
        {"name": "gen_ai.user.message", "attributes": [otlp_attribute("content", "Hello")]},
        {"name": "gen_ai.choice", "attributes": [otlp_attribute("content", json.dumps({"message": {"content": "Hi there"}})), otlp_attribute("finish_reason", "stop")]},
    ]
    [call] = parse_record(span).calls
    assert call.messages == [{"role": "user", "content": "Hello"}]
    assert call.response_text == "Hi there" and call.finish_reason == "stop"


@pytest.mark.parametrize(
    "value, expected",
    [
        (1762300000, "2025-11-04T23:46:40"),
        (1762300000123, "2025-11-04T23:46:40.123000"),
        ("1762300000000000000", "2025-11-04T23:46:40"),
        ("2025-11-04T23:46:40Z", "2025-11-04T23:46:40"),
        ("2025-11-05T00:46:40+01:00", "2025-11-04T23:46:40"),
    ],
)
def test_times_in_seconds_milliseconds_nanoseconds_or_iso_become_naive_utc(value, expected):
    assert parse_time(value).isoformat() == expected
