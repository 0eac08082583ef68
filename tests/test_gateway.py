"""The gateway as an agent sees it: a real server on a loopback port, the official openai client, and a real local
LLM server (`demo.llm`) upstream. Adapters answer through a scripted engine where a test needs a given reply, and
through tiny trained adapters where it needs the real path."""

import json
import time
from dataclasses import replace
from datetime import date

import httpx
import openai
import pytest

from demo.llm import DemoLLM, background_server
from gateway.app import Gateway, create_app
from gateway.engine import Answer, TooSlow
from pipeline.collect import LogFolder
from pipeline.modes import TaskServing, write_modes
from pipeline.router import train_router
from pipeline.served import live_pairs
from pipeline.settings import ServeConfig, Settings

KEY = "sk-upstream-SECRET-7f3a"
INTENT_SYSTEM = "You classify the customer's intent. Reply with one label: order_status, refund_request or complaint."
ROUTING_SYSTEM = "You triage support tickets. Call route_ticket once with the queue and a priority."
ROUTE_TOOL = {"type": "function", "function": {"name": "route_ticket", "description": "Send a ticket to a queue.", "parameters": {
    "type": "object", "properties": {"queue": {"type": "string", "enum": ["billing", "shipping"]},
                                     "priority": {"type": "string", "enum": ["low", "high"]}},
    "required": ["queue", "priority"], "additionalProperties": False}}}
GOOD_ROUTE = json.dumps({"name": "route_ticket", "arguments": {"queue": "billing", "priority": "high"}})


def intent(i: int) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "system", "content": INTENT_SYSTEM},
                                            {"role": "user", "content": f"Where is my order AC-{100000 + i}? It is late."}]}


def ticket(i: int) -> dict:
    return {"model": "gpt-4o", "tools": [ROUTE_TOOL], "messages": [
        {"role": "system", "content": ROUTING_SYSTEM},
        {"role": "user", "content": f"Subject: charged twice\nI was charged twice for order AC-{200000 + i}."}]}


def canonical(request: dict) -> dict:
    return {"messages": json.dumps(request["messages"]), "tools": json.dumps(request.get("tools", []))}


class ScriptedEngine:
    """Answers each task with a set reply, or fails as told: the gateway around it is what is tested."""

    def __init__(self, replies: dict[str, str]):
        self.replies, self.asked = dict(replies), []

    async def answer(self, task, call, max_new_tokens, budget_s):
        self.asked.append(task.task_id)
        reply = self.replies[task.task_id]
        if reply == "raise":
            raise RuntimeError("the engine broke")
        if reply == "slow":
            raise TooSlow(f"no reply within {budget_s} s")
        return Answer(reply, 42, 7)

    def preload(self, tasks):
        pass


@pytest.fixture
def home(tmp_path):
    """Step 3's router over two tasks, and step 6's modes: both tasks served by their adapter."""
    settings = Settings(home=tmp_path / "home", logs_dir=tmp_path / "logs")
    requests = [intent(i) for i in range(12)] + [ticket(i) for i in range(12)]
    train_router([canonical(r) for r in requests], ["task-001"] * 12 + ["task-002"] * 12).save(settings.serving_dir)
    set_modes(settings, {"task-001": "slm", "task-002": "slm"})
    return settings


def set_modes(settings: Settings, modes: dict[str, str], kinds=None) -> None:
    kinds = kinds or {"task-001": "text", "task-002": "tool"}
    write_modes(settings.serving_dir, [TaskServing(t, m, 1, "tiny", "", 2048, kinds[t], 32) for t, m in modes.items()])


@pytest.fixture
def llm():
    """The upstream LLM: answers the intent calls with `order_status`, tickets with a route to shipping."""
    replies = {}
    for i in range(40):
        replies[_key(intent(i))] = {"content": "order_status", "tool_calls": []}
        replies[_key(ticket(i))] = {"content": None, "tool_calls": [
            {"id": "c1", "name": "route_ticket", "arguments": {"queue": "shipping", "priority": "low"}}]}
    upstream = DemoLLM(replies)
    with background_server(upstream.app()) as url:
        upstream.url = url + "/v1"
        yield upstream


def _key(request: dict) -> str:
    from demo.llm import messages_key
    from pipeline.formats import canonical_request

    return messages_key(canonical_request(request)[0])


class Running:
    def __init__(self, url: str, gateway: Gateway):
        self.url, self.gateway = url, gateway
        self.client = openai.OpenAI(base_url=url + "/v1", api_key="agent-key", max_retries=0)

    def lines(self) -> list[dict]:
        """The log's records, once every answer is written."""
        deadline = time.monotonic() + 20
        while self.gateway._pending and time.monotonic() < deadline:
            time.sleep(0.02)
        files = sorted((self.gateway.settings.logs / "gateway").glob("*.jsonl"))
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]

    def metric(self, name: str, **labels) -> float:
        value = self.gateway.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
def serve(home, llm, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", KEY)
    started = []

    def start(replies: dict[str, str] | None = None, engine=None, **serve_changes) -> Running:
        fixed = dict(upstream_base_url=llm.url, upstream_api_key_env="UPSTREAM_KEY", audit_share=0.0, latency_budget_s=5.0)
        config = ServeConfig(**{**fixed, **serve_changes})
        gateway = Gateway(replace(home, serve=config), engine or ScriptedEngine(replies or {}))
        context = background_server(create_app(gateway))
        started.append(context)
        return Running(context.__enter__(), gateway)

    yield start
    for context in started:
        context.__exit__(None, None, None)


def test_each_call_is_served_by_its_tasks_adapter_and_the_key_is_never_logged(serve, llm, capfd):
    gateway = serve({"task-001": "order_status", "task-002": GOOD_ROUTE})

    text = gateway.client.chat.completions.with_raw_response.create(**intent(1))
    routed = gateway.client.chat.completions.create(**ticket(1))

    assert text.headers["x-slm-served-by"] == "task-001/v1" and text.parse().choices[0].message.content == "order_status"
    [call] = routed.choices[0].message.tool_calls
    assert (routed.model, call.function.name, json.loads(call.function.arguments)) == (
        "task-002/v1", "route_ticket", {"queue": "billing", "priority": "high"})
    assert routed.choices[0].finish_reason == "tool_calls" and routed.usage.total_tokens == 49
    assert llm.calls == 0 and gateway.gateway.engine.asked == ["task-001", "task-002"]
    lines = gateway.lines()
    assert [(r["served_by"], r["task_id"], r["mode"]) for r in lines] == [("task-001/v1", "task-001", "slm"),
                                                                          ("task-002/v1", "task-002", "slm")]
    assert gateway.metric("slm_gateway_calls_total", served_by="slm", task="task-002", mode="slm") == 1
    logs = "".join(p.read_text() for p in (gateway.gateway.settings.logs / "gateway").glob("*")) + "".join(capfd.readouterr())
    assert KEY not in logs


@pytest.mark.parametrize("task, reply, changes, reason", [
    ("task-002", "I would route this to billing.", {}, "not_a_tool_call"),
    ("task-002", json.dumps({"name": "refund_order", "arguments": {}}), {}, "unknown_tool"),
    ("task-002", json.dumps({"name": "route_ticket", "arguments": {"queue": "moon", "priority": "high"}}), {}, "invalid_arguments"),
    ("task-002", GOOD_ROUTE, {"tool_choice": "none"}, "tool_choice"),
    ("task-001", "order_status", {"response_format": {"type": "json_object"}}, "invalid_json"),
    ("task-001", '{"label": 3}', {"response_format": {"type": "json_schema", "json_schema": {"name": "label", "schema": {
        "type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}}}}, "schema_mismatch"),
    ("task-001", "   ", {}, "empty"),
    ("task-001", "raise", {}, "engine_error"),
    ("task-001", "slow", {}, "timeout"),
])
def test_an_adapter_reply_that_fails_its_check_falls_back_to_the_llm_counted_by_reason(serve, task, reply, changes, reason):
    gateway = serve({task: reply})
    request = {**(intent(2) if task == "task-001" else ticket(2)), **changes}

    answer = gateway.client.chat.completions.with_raw_response.create(**request)

    assert answer.headers["x-slm-served-by"] == "llm"
    message = answer.parse().choices[0].message
    assert message.content == "order_status" if task == "task-001" else message.tool_calls[0].function.name == "route_ticket"
    assert gateway.metric("slm_gateway_fallbacks_total", task=task, reason=reason) == 1
    [line] = gateway.lines()
    assert (line["served_by"], line["slm"]["fallback"], line["slm"]["adapter"]) == ("llm", reason, f"{task}/v1")


def test_in_shadow_the_llm_answers_and_both_answers_are_logged_once_as_a_live_pair(serve, home):
    set_modes(home, {"task-001": "shadow", "task-002": "shadow"})
    gateway = serve({"task-001": "refund_request", "task-002": GOOD_ROUTE})

    answers = [gateway.client.chat.completions.create(**intent(i)).choices[0].message.content for i in range(3)]
    gateway.client.chat.completions.create(**ticket(3))

    assert answers == ["order_status"] * 3
    lines = gateway.lines()
    assert len(lines) == 4 and {r["served_by"] for r in lines} == {"llm"}
    assert [r["slm"]["text"] for r in lines] == ["refund_request"] * 3 + [GOOD_ROUTE]
    pairs = live_pairs(home.logs)
    assert list(pairs["task_id"]) == ["task-001"] * 3 + ["task-002"]
    assert list(pairs["llm_text"])[:3] == ["order_status"] * 3 and list(pairs["slm_text"])[:3] == ["refund_request"] * 3
    assert json.loads(pairs["llm_tool_calls"].iloc[3])[0]["arguments"] == {"queue": "shipping", "priority": "low"}


def test_an_adapter_served_call_is_audited_by_the_llm_for_live_agreement(serve):
    gateway = serve({"task-002": GOOD_ROUTE}, audit_share=1.0)

    assert gateway.client.chat.completions.create(**ticket(4)).model == "task-002/v1"

    [line] = gateway.lines()
    assert line["served_by"] == "task-002/v1" and line["llm"]["response"]["choices"][0]["finish_reason"] == "tool_calls"
    assert len(live_pairs(gateway.gateway.settings.logs)) == 1


@pytest.mark.parametrize("served_by", ["llm", "task-002/v1"])
def test_streams_are_chat_completion_chunks_ending_with_done(serve, home, served_by):
    if served_by == "llm":
        set_modes(home, {"task-002": "llm"})
    gateway = serve({"task-002": GOOD_ROUTE})

    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json={**ticket(5), "stream": True}) as raw:
        events = [line for line in raw.iter_lines() if line]
    stream = gateway.client.chat.completions.create(**ticket(5), stream=True, stream_options={"include_usage": True})
    pieces = list(stream)

    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    assert {json.loads(e[6:])["object"] for e in events[:-1]} == {"chat.completion.chunk"}
    [call] = [c for p in pieces if p.choices for c in p.choices[0].delta.tool_calls or []]
    expected = {"llm": {"queue": "shipping", "priority": "low"}, "task-002/v1": {"queue": "billing", "priority": "high"}}
    assert json.loads(call.function.arguments) == expected[served_by] and pieces[-1].usage.total_tokens > 0
    assert [line["served_by"] for line in gateway.lines()] == [served_by] * 2


def test_bad_input_gets_an_openai_error_and_reaches_no_model(serve, llm):
    gateway = serve({"task-001": "order_status"}, max_body_bytes=2000)
    post = lambda **kwargs: httpx.post(gateway.url + "/v1/chat/completions", **kwargs)

    malformed = post(content=b'{"model": "gpt-4o", "messages": [')
    unknown = post(json={**intent(1), "temperatur": 0.2})
    no_messages = post(json={"model": "gpt-4o", "messages": []})
    oversized = post(json={**intent(1), "user": "x" * 3000})

    assert (malformed.status_code, malformed.json()["error"]["type"]) == (400, "invalid_request_error")
    assert "could not parse the JSON body" in malformed.json()["error"]["message"]
    assert unknown.status_code == 400 and unknown.json()["error"] == {
        "message": "Unrecognized request argument supplied: temperatur", "type": "invalid_request_error",
        "param": "temperatur", "code": None}
    assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"
    assert oversized.status_code == 413 and oversized.json()["error"]["code"] == "request_too_large"
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: temperatur"):
        gateway.client.chat.completions.create(**intent(1), extra_body={"temperatur": 0.2})
    assert llm.calls == 0 and gateway.lines() == []


def test_with_the_llm_down_slm_tasks_keep_answering_and_the_rest_get_an_error_that_is_logged(serve, home, llm, tmp_path):
    set_modes(home, {"task-001": "slm", "task-002": "llm"})
    gateway = serve({"task-001": "order_status", "task-002": GOOD_ROUTE})
    llm.down = True

    served = gateway.client.chat.completions.create(**intent(6))
    with pytest.raises(openai.InternalServerError) as refused:
        gateway.client.chat.completions.create(**ticket(6))

    assert served.choices[0].message.content == "order_status"
    assert refused.value.status_code == 503  # the LLM's own error, passed through
    gateway.gateway.config = replace(gateway.gateway.config, upstream_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(openai.APIStatusError) as unreachable:
        gateway.client.chat.completions.create(**ticket(7))
    assert unreachable.value.status_code == 502 and unreachable.value.body["code"] == "upstream_unreachable"
    lines = gateway.lines()
    assert [bool(r.get("error_details")) for r in lines] == [False, True, True]
    collected = LogFolder(home.logs, tmp_path / "cache", 1 << 20, date(2024, 1, 1)).collect()
    # the adapter's answer is no LLM reply to learn from: counted, never trained on
    assert collected.calls.empty and sorted(collected.quarantine["reason"].str[:25]) == [
        "LLM call failed: upstream", "LLM call failed: upstream", "served by the adapter tas"]


def test_a_caller_who_leaves_mid_stream_loses_the_gateway_nothing(serve, home, llm):
    set_modes(home, {"task-001": "llm"})
    llm.replies[_key(intent(8))] = {"content": " ".join(f"word{i}" for i in range(40)), "tool_calls": []}
    llm.chunk_delay_s = 0.02
    gateway = serve({})

    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json={**intent(8), "stream": True}) as raw:
        first = next(raw.iter_lines())
    assert first.startswith("data: ")

    [line] = gateway.lines()
    collected = LogFolder(home.logs, home.home / "cache", 1 << 20, date(2024, 1, 1)).collect().calls
    assert line["served_by"] == "llm" and collected["response_text"].iloc[0].endswith("word38 word39")


def test_a_real_adapter_answers_as_it_did_in_evaluation(serve, home, tiny_checkpoint):
    from finetune.adapters import input_rule, train_task_adapter
    from finetune.engines import load_engine
    from finetune.models import load_tokenizer
    from finetune.prompts import adapter_examples, prompt_text
    from gateway.engine import LocalEngine
    from pipeline.context import ContextPolicy, InputRule
    from pipeline.settings import EngineConfig, TrainConfig

    tokenizer = load_tokenizer(tiny_checkpoint)
    rule = InputRule(context=ContextPolicy(window=2))
    for task_id, make, seed in (("task-001", intent, 1), ("task-002", ticket, 2)):
        calls = [{**canonical(make(i)), "response_text": "order_status", "response_tool_calls": "[]"} for i in range(4)]
        train_task_adapter(task_id, "tiny", tiny_checkpoint, adapter_examples(tokenizer, calls, rule, 2048), rule,
                           home.adapters_dir, TrainConfig(min_steps=1, max_steps=1, seed=seed))
    write_modes(home.serving_dir, [TaskServing(t, "slm", 1, "tiny", str(tiny_checkpoint), 2048, "text", 6)
                                   for t in ("task-001", "task-002")])
    engines = home.home / "engines"
    gateway = serve(engine=LocalEngine(home.adapters_dir, EngineConfig(), engines), latency_budget_s=60.0)

    answers = {t: gateway.client.chat.completions.create(**make(9), max_tokens=6) for t, make in
               (("task-001", intent), ("task-002", ticket))}

    for task_id, make in (("task-001", intent), ("task-002", ticket)):
        # what step 6 scored: the same engine, the same rendering
        engine = load_engine(tiny_checkpoint, home.adapters_dir / task_id / "v1", EngineConfig(), engines)
        prompt = prompt_text(tokenizer, input_rule(home.adapters_dir, task_id, 1).prepare(canonical(make(9))))
        offline = engine.generate([prompt], 6).texts[0]
        assert answers[task_id].model == f"{task_id}/v1"
        assert answers[task_id].choices[0].message.content == offline


def test_models_health_and_metrics(serve):
    gateway = serve({"task-001": "order_status"})
    gateway.client.chat.completions.create(**intent(10))

    assert {m.id for m in gateway.client.models.list()} == {"demo-llm", "task-001/v1", "task-002/v1"}
    assert httpx.get(gateway.url + "/health").json() == {
        "status": "ok", "router": True, "tasks": {"task-001": "slm", "task-002": "slm"}, "upstream": True}
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'slm_gateway_routes_total{outcome="routed"} 1.0' in metrics and "slm_gateway_routing_seconds_bucket" in metrics
