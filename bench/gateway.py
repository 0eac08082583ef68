"""The gateway on loopback, with bounded request counts, in one run:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/gateway.py [--calls 300] [--clients 16] [--slm-calls 20] [--long 120]

1. The router against step 3: on the demo logs and on `demo.long_logs`' airline conversations (harder: one agent,
   one system prompt, 14 tools in every call), step 3 labels the raw calls, the router learns from four of every five
   calls of each task and routes the fifth; the share routed (confidence ≥ `serve.min_confidence`) and, of those,
   the share routed to step 3's task.
2. Routing overhead: the same demo calls sent one at a time to the stand-in LLM (`demo.llm`) directly, the baseline,
   and through the gateway (the LLM answering): the time the gateway adds per call, p50/p95; and the routing work
   alone (reading, checking and routing a call), timed in this process.
3. Throughput with `--clients` concurrent clients, each sending its share of `--calls`, directly and through the
   gateway, and that every call the gateway answered is logged exactly once.
4. SLM-served latency: a SmolLM2-135M adapter for the demo's intent task (trained here, 20 LoRA steps, unless
   `--home` holds one), serving `--slm-calls` calls one at a time, against the LLM's latency as the logs record it.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from contextlib import contextmanager
import sys
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from demo.llm import DemoLLM, background_server  # noqa: E402
from demo.logs import write_demo_logs  # noqa: E402
from demo.long_logs import write_long_logs  # noqa: E402
from gateway.api import ChatCompletionRequest  # noqa: E402
from gateway.app import Gateway, create_app  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.formats import canonical_request  # noqa: E402
from pipeline.modes import TaskServing, write_modes  # noqa: E402
from pipeline.router import agreement, held_out_split, tradeoff, train_router  # noqa: E402
from pipeline.settings import ServeConfig, Settings  # noqa: E402
from pipeline.tasks import find_tasks, signature_embeddings, task_signature  # noqa: E402


def step3(folder: Path, cache: Path):
    from finetune.models import encode

    calls = LogFolder(folder, cache, 1 << 22, date(2024, 1, 1)).collect().calls
    calls = calls.sort_values(["called_at", "call_id"]).reset_index(drop=True)
    signatures = [task_signature(c) for c in calls.to_dict("records")]
    found = find_tasks(calls, signatures, signature_embeddings(signatures, encode), encode)
    return calls, found


def router_agreement(name: str, calls, found, min_confidence: float):
    """Prints the router's row of the table; returns its trade-off between share routed and agreement."""
    records, task_ids = calls.to_dict("records"), found.task_clusters["task_id"].tolist()
    held = held_out_split(task_ids)
    started = time.perf_counter()
    router = train_router([r for r, h in zip(records, held) if not h], [t for t, h in zip(task_ids, held) if not h])
    seconds = time.perf_counter() - started
    held_calls, held_tasks = [r for r, h in zip(records, held) if h], [t for t, h in zip(task_ids, held) if h]
    checked = agreement(router, held_calls, held_tasks, min_confidence)
    print(f"| {name} | {len(calls):,} calls, {len(found.tasks)} tasks | {int(held.sum())} | {checked.routed_share:.0%} | "
          f"{checked.agreement:.1%} | {seconds:.1f} s |")
    return tradeoff(router, held_calls, held_tasks).assign(logs=name)


def request_of(call: dict, i: int) -> dict:
    request = {"model": "gpt-4o", "messages": json.loads(call["messages"]), "user": f"bench-{i}"}
    if json.loads(call["tools"]):
        request["tools"] = json.loads(call["tools"])
    return request


def timed(url: str, requests: list[dict]) -> list[float]:
    times = []
    with httpx.Client(timeout=120) as client:
        for request in requests:
            started = time.perf_counter()
            client.post(url + "/chat/completions", json=request).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def concurrent(url: str, requests: list[dict], clients: int) -> float:
    """Requests per second with `clients` threads sharing `requests`."""
    shares = [requests[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=timed, args=(url, share)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(requests) / (time.perf_counter() - started)


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for f in (folder / "gateway").glob("*.jsonl") for line in f.read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def process(command: list[str], environment: dict, ready: str):
    """A server in its own process, once `ready` answers; yields its base URL (`ready`'s, up to /v1 or the root)."""
    started = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(ready, timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or started.poll() is not None:
                    raise RuntimeError(f"{command} did not start") from None
                time.sleep(0.2)
        yield ready.split("/v1")[0].rsplit("/health", 1)[0]
    finally:
        started.terminate()
        started.wait(timeout=30)


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def intent_adapter(home: Path, calls, found) -> TaskServing:
    """A SmolLM2-135M adapter for the demo's intent task, trained once under `home`."""
    from finetune.adapters import train_task_adapter, versions
    from finetune.candidates import load_candidates
    from finetune.evaluate import reply_budget
    from finetune.models import base_checkpoint, load_tokenizer
    from finetune.prompts import adapter_examples
    from pipeline.context import InputRule
    from pipeline.pruning import learn_pruning
    from pipeline.settings import PickConfig, TrainConfig

    labels = found.task_clusters["task_id"]
    task_id = labels[calls["messages"].str.contains("intent classifier").to_numpy()].mode()[0]
    records = calls[labels == task_id].to_dict("records")
    candidate = load_candidates()[0]
    checkpoint = base_checkpoint(candidate, home)
    tokenizer = load_tokenizer(checkpoint)
    if not versions(home / "adapters", task_id):
        rule = InputRule(learn_pruning(records), PickConfig().context(2))
        examples = adapter_examples(tokenizer, records, rule, 2048)
        train_task_adapter(task_id, candidate.name, checkpoint, examples, rule, home / "adapters",
                           TrainConfig(min_steps=20, max_steps=20))
    return TaskServing(task_id, "slm", max(versions(home / "adapters", task_id)), candidate.name, str(checkpoint),
                       candidate.context_length, "text", reply_budget(tokenizer, records, 256))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slm-calls", type=int, default=20)
    parser.add_argument("--long", type=int, default=120, help="airline conversations for the router's harder test")
    parser.add_argument("--home", type=Path, default=None, help="keeps the converted model and adapter between runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    home = args.home or work / "home"
    settings = Settings(home=home, logs_dir=work / "served")
    min_confidence = settings.serve.min_confidence

    print("## The router against step 3 (held out: every fifth call of each task)\n")
    print(f"| logs | step 3 | held out | routed (confidence ≥ {min_confidence}) | agreeing with step 3 | training |")
    print("|---|---|---|---|---|---|")
    write_demo_logs(work / "demo")
    calls, found = step3(work / "demo", work / "cache")
    tradeoffs = [router_agreement("demo", calls, found, min_confidence)]
    if args.long:
        write_long_logs(work / "long", args.long)
        long_calls, long_found = step3(work / "long", work / "cache")
        tradeoffs.append(router_agreement("long airline conversations", long_calls, long_found, min_confidence))
    print("\nBy `serve.min_confidence`, the share of held-out calls routed and the share of those agreeing:\n")
    print(pd.concat(tradeoffs).to_markdown(index=False))

    router = train_router(calls.to_dict("records"), found.task_clusters["task_id"].tolist())
    router.save(settings.serving_dir)
    sample = calls.sample(n=min(args.calls, len(calls)), random_state=0).to_dict("records")
    requests = [request_of(c, i) for i, c in enumerate(sample)]
    routing = []
    for request in requests:
        started = time.perf_counter()
        ChatCompletionRequest.model_validate(request)
        messages, tools = canonical_request(request)
        router.assign([{"messages": json.dumps(messages, ensure_ascii=False), "tools": json.dumps(tools)}], min_confidence)
        routing.append(time.perf_counter() - started)

    # the stand-in LLM and the gateway each in a process of its own, as deployed: the clients here share no lock with them
    config = work / "config.yaml"
    port = free_port()
    config.write_text(f"serve: {{upstream_base_url: 'http://127.0.0.1:{port}/v1', audit_share: 0.0, port: {free_port()}}}\n")
    environment = {**os.environ, "SLM_HOME": str(home), "SLM_LOGS_DIR": str(settings.logs), "SLM_CONFIG": str(config)}
    with process([sys.executable, "-m", "demo.llm", str(work / "demo"), "--port", str(port)], environment,
                 f"http://127.0.0.1:{port}/v1/models") as upstream, \
            process([sys.executable, "-m", "gateway"], environment,
                    f"http://127.0.0.1:{Settings.from_env(environment).serve.port}/health") as url:
        timed(upstream + "/v1", requests[:20]), timed(url + "/v1", requests[:20])  # warm both
        direct, through = [], []
        for _ in range(3):  # interleaved rounds: the machine's load falls on both alike
            direct += timed(upstream + "/v1", requests)
            through += timed(url + "/v1", requests)
        rate_direct = concurrent(upstream + "/v1", requests, args.clients)
        rate_through = concurrent(url + "/v1", requests, args.clients)
        sent = Counter(r["user"] for r in requests[:20] + requests * 4)
        deadline = time.monotonic() + 30  # a call's line is written once its answer is out
        while len(logged := read_log(settings.logs)) < sum(sent.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        users = Counter(line["request"]["user"] for line in logged)

        print(f"\n## Routing overhead, {len(requests)} demo calls × 3, one at a time (the LLM answering at once)\n")
        print("| what | p50 | p95 |\n|---|---|---|")
        print(f"| stand-in LLM directly (baseline) | {ms(direct, 50):.2f} ms | {ms(direct, 95):.2f} ms |")
        print(f"| through the gateway | {ms(through, 50):.2f} ms | {ms(through, 95):.2f} ms |")
        print(f"| added by the gateway | {ms(through, 50) - ms(direct, 50):.2f} ms | {ms(through, 95) - ms(direct, 95):.2f} ms |")
        print(f"| routing work alone (parse, check, route) | {ms(routing, 50):.2f} ms | {ms(routing, 95):.2f} ms |")
        print(f"\n## Throughput, {args.clients} concurrent clients, {len(requests)} calls\n")
        print(f"| stand-in LLM directly | {rate_direct:.0f} calls/s |\n|---|---|")
        print(f"| through the gateway | {rate_through:.0f} calls/s ({rate_through / rate_direct:.2f}×) |")
        print(f"\nlogged: {len(logged)} lines for {sum(sent.values())} calls answered; every call exactly once: {users == sent}")

    llm = DemoLLM.from_calls(calls.to_dict("records"))
    with background_server(llm.app()) as upstream:
        if args.slm_calls:
            task = intent_adapter(home, calls, found)
            write_modes(settings.serving_dir, [task])
            gateway = Gateway(replace(settings, serve=ServeConfig(upstream_base_url=upstream + "/v1", audit_share=0.0,
                                                                  latency_budget_s=60.0)))
            labels = found.task_clusters["task_id"]
            mine = [request_of(c, i) for i, c in enumerate(calls[labels == task.task_id].tail(args.slm_calls + 2).to_dict("records"))]
            with background_server(create_app(gateway)) as url:
                timed(url + "/v1", mine[:2])  # loads the model
                slm = []
                with httpx.Client(timeout=120) as client:
                    for request in mine[2:]:
                        started = time.perf_counter()
                        answer = client.post(url + "/v1/chat/completions", json=request)
                        slm.append((time.perf_counter() - started, answer.headers.get("x-slm-served-by")))
            logged_llm = calls["latency_ms"].dropna()
            served = [s for s, by in slm if by != "llm"]
            print(f"\n## SLM-served calls: the demo's intent task, SmolLM2-135M + adapter, {len(slm)} calls one at a time\n")
            print("| what | p50 | p95 |\n|---|---|---|")
            print(f"| the LLM, as logged (gpt-4o in the demo's OTel spans, {len(logged_llm)} calls) | "
                  f"{logged_llm.median():.0f} ms | {logged_llm.quantile(0.95):.0f} ms |")
            if served:
                print(f"| the adapter through the gateway ({len(served)} of {len(slm)} served, the rest fell back) | "
                      f"{ms(served, 50):.0f} ms | {ms(served, 95):.0f} ms |")
                print(f"\nratio at p50: {ms(served, 50) / logged_llm.median():.2f}× the logged LLM latency")
            fallbacks = {k[1]["reason"]: v for k, v in [((s.name, s.labels), s.value) for m in gateway.metrics.registry.collect()
                         for s in m.samples if s.name == "slm_gateway_fallbacks_total"]}
            print(f"fallbacks by reason: {fallbacks or 'none'}")
    print(f"\nmachine: {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
