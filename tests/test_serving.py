"""Serving and the pipeline: the router agrees with step 3 on calls it never saw, calls served through the gateway
come back through step 1 into the tasks they were routed to, and live agreement moves each task's mode."""

import json
import math
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import openai
import pandas as pd
import pytest

from demo.llm import DemoLLM, background_server
from demo.logs import write_demo_logs
from gateway.app import Gateway, create_app
from pipeline.collect import LogFolder
from pipeline.formats import canonical_request
from pipeline.modes import (
    HAND,
    Current,
    Live,
    TaskServing,
    next_mode,
    plan_modes,
    read_modes,
    write_modes,
)
from pipeline.router import agreement, held_out_split, train_router
from pipeline.settings import ServeConfig, Settings
from pipeline.tasks import PreviousCycle, find_tasks, signature_embeddings, task_signature
from pipeline.vllm import vllm_configs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo logs through step 1, and step 3's tasks over them."""
    from finetune.models import encode

    folder = tmp_path_factory.mktemp("demo")
    write_demo_logs(folder / "logs", calls=500, days=2)
    calls = LogFolder(folder / "logs", folder / "cache", 1 << 22, date(2024, 1, 1)).collect().calls
    calls = calls.sort_values(["called_at", "call_id"]).reset_index(drop=True)
    signatures = [task_signature(c) for c in calls.to_dict("records")]
    embeddings = signature_embeddings(signatures, encode)
    found = find_tasks(calls, signatures, embeddings, encode)
    return folder, calls, signatures, embeddings, found


def test_the_router_agrees_with_step_3_on_held_out_demo_calls(demo):
    _, calls, _, _, found = demo
    records, task_ids = calls.to_dict("records"), found.task_clusters["task_id"].tolist()
    held = held_out_split(task_ids)

    router = train_router([r for r, h in zip(records, held) if not h], [t for t, h in zip(task_ids, held) if not h])
    checked = agreement(router, [r for r, h in zip(records, held) if h], [t for t, h in zip(task_ids, held) if h], 0.8)

    print(f"routed {checked.routed_share:.1%} of {held.sum()} held-out calls, {checked.agreement:.1%} agreeing")
    assert checked.agreement >= 0.95 and checked.routed_share >= 0.9


def test_a_call_unlike_any_task_is_unknown(demo):
    _, calls, _, _, found = demo
    router = train_router(calls.to_dict("records"), found.task_clusters["task_id"].tolist())
    stranger = {"messages": json.dumps([{"role": "system", "content": "Du bist ein Übersetzer für Gedichte."},
                                        {"role": "user", "content": "Übersetze: Der Mond ist aufgegangen."}]), "tools": "[]"}
    [route] = router.assign([stranger], 0.8)
    assert route.task_id is None


def test_the_same_customer_reply_is_routed_by_what_the_assistant_asked():
    """In one agent's logs a bare "yes" is followed by a cancellation or a booking: the question before it decides."""
    def call(question: str, answer: str) -> dict:
        return {"messages": json.dumps([{"role": "system", "content": "You are an airline agent."},
                                        {"role": "user", "content": f"I need help with reservation {answer}."},
                                        {"role": "assistant", "content": question},
                                        {"role": "user", "content": "yes"}]), "tools": "[]"}

    asked = {"task-cancel": "Shall I cancel reservation {} now?", "task-book": "Shall I book flight {} for you?"}
    calls, task_ids = [], []
    for task, question in asked.items():
        for n in range(12):
            calls.append(call(question.format(f"R{n:04d}"), f"R{n:04d}"))
            task_ids.append(task)

    router = train_router(calls, task_ids)
    routes = router.assign([call(asked["task-cancel"].format("Q7"), "Q7"), call(asked["task-book"].format("Q7"), "Q7")],
                           0.8)
    assert [r.task_id for r in routes] == ["task-cancel", "task-book"]

def test_calls_served_through_the_gateway_come_back_through_step_1_into_their_task(demo, tmp_path):
    """The flywheel's round trip: the agent's calls go through the gateway (the LLM answering), step 1 collects the
    gateway's log, and step 3, run again over old and new calls, puts each one where the router sent it."""
    from finetune.models import encode

    folder, calls, signatures, embeddings, found = demo
    router = train_router(calls.to_dict("records"), found.task_clusters["task_id"].tolist())
    settings = Settings(home=tmp_path / "home", logs_dir=tmp_path / "logs")
    router.save(settings.serving_dir)
    sample = calls.iloc[::12]
    llm = DemoLLM.from_calls(calls.to_dict("records"))
    with background_server(llm.app()) as upstream:
        gateway = Gateway(replace(settings, serve=ServeConfig(upstream_base_url=upstream + "/v1")))
        with background_server(create_app(gateway)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            for call in sample.to_dict("records"):
                request = {"model": "gpt-4o", "messages": json.loads(call["messages"])}
                if json.loads(call["tools"]):
                    request["tools"] = json.loads(call["tools"])
                client.chat.completions.create(**request)

    logged = [json.loads(line) for f in (settings.logs / "gateway").glob("*.jsonl") for line in f.read_text().splitlines()]
    served = LogFolder(settings.logs, tmp_path / "cache", 1 << 22, date(2024, 1, 1)).collect().calls
    assert len(logged) == len(served) == len(sample)
    routed_to = {json.dumps(canonical_request(r["request"])[0], ensure_ascii=False): r["task_id"] for r in logged}
    again = pd.concat([calls, served], ignore_index=True)
    new_signatures = [task_signature(c) for c in served.to_dict("records")]
    new_embeddings = signature_embeddings(new_signatures, encode)
    cycle = find_tasks(again, signatures + new_signatures, np.vstack([embeddings, new_embeddings]), encode,
                       previous=PreviousCycle(found.tasks, found.task_clusters))
    landed = cycle.task_clusters["task_id"].iloc[len(calls):].tolist()
    expected = [routed_to[m] for m in served["messages"]]
    routed = [(a, b) for a, b in zip(landed, expected) if b is not None]
    assert len(routed) >= 0.9 * len(expected) and sum(a == b for a, b in routed) / len(routed) >= 0.95
    assert set(served["response_text"].dropna()) <= set(calls["response_text"].dropna())  # the LLM's own answers


def test_a_task_moves_to_shadow_then_slm_on_live_agreement_and_back_to_llm_when_it_drops():
    rule = dict(threshold=0.9, min_pairs=50)
    shadow = Current("shadow", 3, "rule")
    assert next_mode(None, 3, True, Live(), **rule)[0] == "shadow"  # newly replaceable
    assert next_mode(Current("slm", 2, "rule"), 3, True, Live(), **rule)[0] == "shadow"  # a new adapter starts over
    assert next_mode(shadow, 3, True, Live(49, 1.0), **rule)[0] == "shadow"  # too few live calls yet
    assert next_mode(shadow, 3, True, Live(50, 0.93), **rule) == ("slm", "live agreement 0.93 on 50 calls reaches the threshold 0.9")
    assert next_mode(Current("slm", 3, "rule"), 3, True, Live(80, 0.95), **rule)[0] == "slm"
    assert next_mode(Current("slm", 3, "rule"), 3, True, Live(80, 0.85), **rule)[0] == "llm"
    assert next_mode(Current("llm", 3, "rule"), 3, True, Live(80, 0.85), **rule)[0] == "llm"  # stays, on evidence
    assert next_mode(Current("canary:0.2", 3, HAND), 3, True, Live(60, 0.95), **rule)[0] == "canary:0.2"
    assert next_mode(Current("slm", 3, HAND), 3, True, Live(60, 0.5), **rule)[0] == "llm"  # safety over a hand
    assert next_mode(shadow, 3, False, Live(), **rule)[0] == "llm"  # step 6 no longer lets it


def test_modes_are_planned_from_step_6_and_live_agreement_with_hand_and_configuration_over_them():
    tasks = pd.DataFrame({"task_id": ["task-001", "task-002", "task-003"],
                          "reply_types": ['{"tool:route_ticket": 9}', '{"text": 9}', '{"json": 9}']})
    evaluations = pd.DataFrame({"task_id": ["task-001", "task-002", "task-003"], "promoted": [True, True, False],
                                "adapter_version": [2, 1, 1], "replaceable": [True, True, False], "score": [0.95, 0.9, 0.5]})
    live = pd.DataFrame({"task_id": ["task-001"], "adapter_version": [2], "pairs": [60], "agreement": [0.96]})
    before = pd.DataFrame({"task_id": ["task-001"], "mode": ["shadow"], "adapter_version": [2], "set_by": ["rule"],
                           "changed_at": [datetime(2026, 11, 1)]})
    now = datetime(2026, 11, 5)
    thresholds = {"tool": 0.9, "json": 0.9, "text": 0.8}

    planned = plan_modes(tasks, evaluations, live, before, thresholds, 50, {}, {}, now).set_index("task_id")
    assert list(planned["mode"]) == ["slm", "shadow", "llm"]
    assert planned.loc["task-001", "changed_at"] == now and math.isnan(planned.loc["task-003", "offline_score"])
    by_hand = plan_modes(tasks, evaluations, live, before, thresholds, 50, {"task-002": "canary:0.1"}, {"task-001": "llm"}, now)
    assert list(by_hand["mode"]) == ["llm", "canary:0.1", "llm"] and list(by_hand["set_by"])[:2] == ["configuration", "hand"]
    with pytest.raises(ValueError, match="canary:<share>"):
        plan_modes(tasks, evaluations, live, before, thresholds, 50, {"task-002": "canary:2"}, {}, now)


def test_the_gateway_reads_modes_with_the_configuration_over_them_and_vllm_gets_a_lora_module_per_served_task(tmp_path):
    served = [TaskServing("task-001", "slm", 2, "smollm2", "/models/smollm2", 8192, "tool", 40),
              TaskServing("task-002", "shadow", 1, "smollm2", "/models/smollm2", 8192, "text", 90),
              TaskServing("task-003", "llm", 1, "smollm2", "/models/smollm2", 8192, "json", 60)]
    write_modes(tmp_path, served)
    assert read_modes(tmp_path, {"task-002": "slm"})["task-002"].mode == "slm"
    for task, version in (("task-001", 2), ("task-002", 1)):
        (tmp_path / "adapters" / task / f"v{version}").mkdir(parents=True)
        (tmp_path / "adapters" / task / f"v{version}" / "adapter_config.json").write_text('{"r": 8}')

    [(candidate, config)] = vllm_configs(served, tmp_path / "adapters").items()

    assert candidate == "smollm2" and config["model"] == "/models/smollm2" and config["enable-lora"]
    assert config["lora-modules"] == [f"task-001={tmp_path}/adapters/task-001/v2", f"task-002={tmp_path}/adapters/task-002/v1"]
    assert (config["max-lora-rank"], config["max-loras"]) == (8, 2)


def test_on_a_gpu_deployment_the_gateway_sends_the_rendered_prompt_to_vllm_naming_the_task(tmp_path, tiny_checkpoint):
    from fastapi import FastAPI

    from gateway.engine import VLLMEngine
    from pipeline.context import InputRule

    seen = []
    vllm = FastAPI()

    @vllm.post("/v1/completions")
    async def completions(body: dict):
        seen.append(body)
        return {"choices": [{"text": " order_status", "index": 0}], "usage": {"completion_tokens": 3}}

    folder = tmp_path / "adapters" / "task-001" / "v1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"input": InputRule().to_dict()}))
    task = TaskServing("task-001", "slm", 1, "tiny", str(tiny_checkpoint), 2048, "text", 16)
    call = {"messages": json.dumps([{"role": "user", "content": "where is my order?"}]), "tools": "[]"}
    with background_server(vllm) as url:
        import asyncio

        import httpx

        async def ask():
            async with httpx.AsyncClient() as client:
                return await VLLMEngine(tmp_path / "adapters", url + "/v1", client).answer(task, call, 16, 10.0)

        answer = asyncio.run(ask())
    assert answer.text == "order_status" and seen[0]["model"] == "task-001" and seen[0]["max_tokens"] == 16
    assert "where is my order?" in seen[0]["prompt"] and seen[0]["prompt"].rstrip().endswith("assistant")
