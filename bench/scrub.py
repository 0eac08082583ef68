"""Scrub-step throughput: this step beside plain per-text Presidio on the same calls, in one run.

    .venv/bin/python bench/scrub.py [--calls 1000] [--processes 2]

Baseline: plain Presidio, as one would call it per message: `analyze` + `AnonymizerEngine.anonymize` for every
message of every call as logged (its content, tool-call arguments as their JSON string), the tool definitions and
the reply, one at a time, in one process. Two baselines:
- "the same detectors": an `AnalyzerEngine` with this step's recognizers, spaCy model and Rampart
  (`pipeline.recognizers.build_analyzer`), what a user gets by registering them with Presidio and calling it per
  message. The ratio to it is what the step's own work saves: its content-hash cache, JSON documents, batches and
  worker processes. The target is read against it.
- "Presidio's defaults": Presidio's default recognizers on the same spaCy model (its full pipeline), which do
  less (no Rampart, no secrets, no addresses): printed beside, for the cost of the extra detectors.
Neither side counts loading the models (the step's worker start-up is printed apart). The step runs twice: with its
default detectors, and without Rampart, so that Rampart's own time shows as the difference; the time of the
verifying pass over the scrubbed calls (part of the step's) is printed apart.

Three workloads: the demo logs, where system prompts, tool definitions and tool results repeat as in real agent
logs; `demo.long_logs`' airline conversations (--conversations, 0 to skip), long and personal, each call carrying
the whole conversation so far as a real agent's calls do; and calls whose every text is distinct (the Presidio
synthetic PII texts, one user message per call; skipped with a message where ../shared/data is absent).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""  # before Presidio is imported: no public-suffix download
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402
from presidio_analyzer import AnalyzerEngine  # noqa: E402
from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: E402
from presidio_anonymizer import AnonymizerEngine  # noqa: E402

from pipeline.warehouse import frame  # noqa: E402
from pipeline.recognizers import build_analyzer, spacy_model_path  # noqa: E402
from demo.logs import write_demo_logs  # noqa: E402
from demo.long_logs import write_long_logs  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.scrub import open_analyzer, scrub_calls  # noqa: E402
from pipeline.settings import ScrubConfig, Settings  # noqa: E402

SHARED_DATA = Path(os.environ.get("SLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def demo_calls(count: int) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as home:
        write_demo_logs(Path(home) / "logs")
        calls = LogFolder.of(Settings(home=Path(home))).collect().calls
    return calls.sample(n=min(count, len(calls)), random_state=0).reset_index(drop=True)


def long_calls(conversations: int) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as home:
        write_long_logs(Path(home) / "logs", conversations)
        return LogFolder.of(Settings(home=Path(home))).collect().calls


def distinct_calls(count: int) -> pd.DataFrame | None:
    path = SHARED_DATA / "presidio_synth_pii" / "synth_dev_500.json"
    if not path.exists():
        return None
    texts = list(dict.fromkeys(record["full_text"] for record in json.loads(path.read_text())))[:count]
    rows = [
        {
            "call_id": f"d{i}", "called_at": pd.Timestamp("2026-11-02"), "time_from_file": False, "source_file": "synth",
            "source_line": i, "turn": 0, "format": "request_response", "session_id": None, "workload": None,
            "model": None, "messages": json.dumps([{"role": "user", "content": text}]), "tools": "[]",
            "response_text": None, "response_tool_calls": "[]", "finish_reason": "stop", "prompt_tokens": None,
            "completion_tokens": None, "latency_ms": None, "cost_usd": None, "occurrences": 1, "content_hash": f"h{i}",
        }
        for i, text in enumerate(texts)
    ]
    return frame("raw_calls", rows)


def per_message_texts(call: dict) -> list[str]:
    texts = []
    for message in json.loads(call["messages"]):
        texts += [message["content"]] if message.get("content") else []
        texts += [c["function"]["arguments"] for c in message.get("tool_calls") or []]
    texts += [call["tools"]] if call["tools"] != "[]" else []
    texts += [call["response_text"]] if not pd.isna(call["response_text"]) else []
    return texts + [json.dumps(c["arguments"]) for c in json.loads(call["response_tool_calls"])]


def presidio_defaults(config: ScrubConfig) -> AnalyzerEngine:
    model = spacy_model_path(config.spacy_model)
    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp)


def same_detectors(config: ScrubConfig) -> AnalyzerEngine:
    return build_analyzer(config.deny_lists, config.patterns, config.spacy_model, rampart_threads=1)


def plain_presidio_seconds(calls: pd.DataFrame, analyzer: AnalyzerEngine) -> tuple[float, int]:
    anonymizer = AnonymizerEngine()
    texts = [text for call in calls.to_dict("records") for text in per_message_texts(call)]
    started = time.perf_counter()
    for text in texts:
        anonymizer.anonymize(text, analyzer.analyze(text, language="en"))
    return time.perf_counter() - started, len(texts)


def step_seconds(calls: pd.DataFrame, config: ScrubConfig) -> tuple[float, float, int, float]:
    started = time.perf_counter()
    with open_analyzer(config) as analyzer:
        analyzer.analyze(["warm-up: every worker loads the model"] * config.batch_size * max(config.processes, 1))
        start_up = time.perf_counter() - started
        result = scrub_calls(calls, analyzer, config)
    assert result.stats.reconciles() and result.stats.quarantined == 0, result.stats
    return result.stats.seconds, start_up, result.stats.distinct_texts, result.stats.verification_seconds


def compare(name: str, calls: pd.DataFrame, config: ScrubConfig, repeats: int, target: float | None = None) -> None:
    without_rampart = replace(config, rampart=False)
    runs = {label: [step_seconds(calls, c) for _ in range(repeats)]
            for label, c in (("this step", config), ("this step without Rampart", without_rampart))}
    same_s, texts = plain_presidio_seconds(calls, same_detectors(config))
    defaults_s, _ = plain_presidio_seconds(calls, presidio_defaults(config))
    n = len(calls)
    print(f"\n{name}: {n} calls; {texts} message texts for the baselines, "
          f"{runs['this step'][0][2]} distinct documents for this step")
    for label, base_s in (("plain Presidio, the same detectors", same_s), ("plain Presidio, its defaults", defaults_s)):
        print(f"  {label:<38}{base_s:>8.1f} s {n / base_s:>8.1f} calls/s {texts / base_s:>8.1f} texts/s")
    seconds = {}
    for label, ours in runs.items():
        seconds[label] = statistics.median(o[0] for o in ours)
        print(f"  {label:<38}{seconds[label]:>8.1f} s {n / seconds[label]:>8.1f} calls/s"
              f"   (+{statistics.median(o[1] for o in ours):.1f} s worker start-up, median of {repeats})")
    ratio = same_s / seconds["this step"]
    verdict = f" (target {target:g}x: {'ok' if ratio >= target else 'missed'})" if target else ""
    print(f"  ratio to the same detectors: {ratio:.1f}x{verdict};"
          f" to Presidio's defaults: {defaults_s / seconds['this step']:.1f}x,"
          f" {defaults_s / seconds['this step without Rampart']:.1f}x without Rampart")
    verification = statistics.median(o[3] for o in runs["this step"])
    print(f"  of which the last, verifying pass: {verification:.1f} s ({verification / seconds['this step']:.0%})")
    rampart = seconds["this step"] - seconds["this step without Rampart"]
    print(f"  Rampart's own time: {rampart:.1f} s ({rampart / seconds['this step']:.0%} of the step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=60, help="long airline conversations (0: skip)")
    args = parser.parse_args()
    config = ScrubConfig(processes=args.processes)
    print(f"{os.cpu_count()} CPUs; this step with {args.processes} worker processes, batches of {config.batch_size}")
    compare("demo logs", demo_calls(args.calls), config, args.repeats, target=10)
    if args.conversations:
        compare("long airline conversations", long_calls(args.conversations), config, args.repeats)
    distinct = distinct_calls(args.calls)
    if distinct is None:
        print(f"\nall-distinct texts: skipped, {SHARED_DATA} not found (set SLM_SHARED_DATA)")
    else:
        compare("all-distinct texts", distinct, config, args.repeats, target=2)


if __name__ == "__main__":
    sys.exit(main())
