"""Steps 4–6 per task, as the pipeline runs them with default settings: zero-shot, few-shot and fine-tuned scores
with 95% intervals, the decision, and each step's time.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/outcome.py [--workloads bfcl,long,toolbench] [--tasks 3] [--only search_direct_flight,calculate]

Workloads:
- `bfcl`: BFCL v4 live function sets under ../shared/data (skipped, saying why, where absent), the `--tasks` largest
  of `live_multiple`: each set's prompts are one task, each prompt a logged call whose reply is its gold call (the
  first accepted value of each argument; an argument whose first accepted value is empty is left out), its
  functions' parameter types renamed to JSON Schema's (BFCL writes `dict`, `float`, `tuple`). Every
  argument is in the prompt: the easiest tool task there is. Sets have at most 29 prompts, so `min_calls` is 20
  here (30 by default) and step 6 decides on cross-validation (`DecisionConfig.folds`).
- `long`: `demo.long_logs`' airline conversations (`--conversations`), collected, scrubbed and grouped by steps 1–3;
  the `--tasks` largest tasks that step 3 lets train. The share of calls replaceable is printed beside the ceiling
  step 3 allows (calls in tasks of at least `min_calls`); tasks not run count as staying with the LLM.
- `toolbench`: ToolBench's trajectories, grouped by step 3: their tasks are too small to train (printed).

Settings are the defaults, or `SLM_CONFIG`'s where it is set (`training: {max_seconds: 600}` to see what a longer
training budget buys).

Targets (issue 22): tool tasks whose arguments are in the input score ≥ 0.95 fine-tuned and never below few-shot;
≥ 50% of the long demo's calls replaceable; steps 4–6 ≤ 10 minutes per long task on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.agent_tasks import SHARED_DATA, clean, embedder, toolbench_logs  # noqa: E402
from demo.long_logs import write_long_logs  # noqa: E402
from finetune.adapters import train_task_adapter  # noqa: E402
from finetune.candidates import load_candidates  # noqa: E402
from finetune.engines import load_engine  # noqa: E402
from finetune.evaluate import evaluate_task  # noqa: E402
from finetune.models import base_checkpoint, load_tokenizer  # noqa: E402
from finetune.pick import pick_candidate  # noqa: E402
from finetune.prompts import task_training_set  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.tasks import find_tasks, signature_embeddings, task_signature  # noqa: E402


BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}  # its Python names for JSON types


def json_schema(schema):
    """A BFCL parameter schema in JSON Schema's own type names, as an agent's tool schemas are written."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {k: json_schema(v) for k, v in schema.items()}
    if isinstance(schema.get("type"), str):  # not a property named "type"
        kind = BFCL_TYPES.get(schema["type"], schema["type"])
        if kind is None:
            del converted["type"]
        else:
            converted["type"] = kind
    return converted


def bfcl_tasks(count: int) -> list[tuple[str, pd.DataFrame]]:
    """The `count` largest live_multiple function sets, each as a task's calls, one a minute apart."""
    folder = SHARED_DATA / "bfcl_v4"
    gold = {}
    for line in (folder / "possible_answer" / "BFCL_v4_live_multiple.json").open():
        answer = json.loads(line)
        [(name, arguments)] = answer["ground_truth"][0].items()
        gold[answer["id"]] = {"id": "c", "name": name, "arguments": {k: v[0] for k, v in arguments.items() if v and v[0] != ""}}
    sets: dict[str, list[dict]] = {}
    for line in (folder / "BFCL_v4_live_multiple.json").open():
        record = json.loads(line)
        function_set = record["id"].rsplit("_", 1)[1].split("-")[1]
        messages = [m for turn in record["question"] for m in turn]
        sets.setdefault(function_set, []).append({
            "call_id": record["id"], "messages": json.dumps(messages),
            "tools": json.dumps([{"type": "function", "function": {**f, "parameters": json_schema(f["parameters"])}}
                                 for f in record["function"]]),
            "response_text": None, "response_tool_calls": json.dumps([gold[record["id"]]]),
        })
    largest = sorted(sets.items(), key=lambda item: -len(item[1]))[:count]
    start = datetime(2026, 11, 2)
    return [(f"BFCL live_multiple set {name}",
             pd.DataFrame([{**c, "called_at": start + timedelta(minutes=i)} for i, c in enumerate(calls)]))
            for name, calls in largest]


def grouped_tasks(calls: pd.DataFrame, embed, min_calls: int, count: int) -> tuple[list[tuple[str, pd.DataFrame]], float]:
    """The `count` largest tasks step 3 finds that can train, and the share of calls in all such tasks."""
    signatures = [task_signature(c) for c in calls.to_dict("records")]
    found = find_tasks(calls, signatures, signature_embeddings(signatures, embed), embed, min_calls=min_calls)
    trainable = found.tasks[found.tasks["calls"] >= min_calls].sort_values("calls", ascending=False)
    weights = calls["occurrences"].to_numpy() if "occurrences" in calls else np.ones(len(calls))
    in_trainable = found.task_clusters["task_id"].isin(set(trainable["task_id"])).to_numpy()
    tasks = []
    for task_id, title in zip(trainable["task_id"][:count], trainable["title"][:count]):
        mask = (found.task_clusters["task_id"] == task_id).to_numpy()
        tasks.append((title, calls[mask].sort_values(["called_at", "call_id"]).reset_index(drop=True)))
    return tasks, float(weights[in_trainable].sum() / weights.sum())


def outcome(task_id: str, title: str, calls: pd.DataFrame, embed, home: Path, settings: Settings) -> dict:
    signatures = [task_signature(c) for c in calls.to_dict("records")]
    embeddings = signature_embeddings(signatures, embed)
    candidates = load_candidates(None)
    load = partial(load_engine, config=settings.engine, cache=home / "engines")
    row = {"task": title, "calls": len(calls)}
    started = time.perf_counter()
    pick = pick_candidate(task_id, calls, embeddings, candidates, home, settings.pick, embed, load)
    row["pick_s"] = time.perf_counter() - started
    scored = pick.table[pick.table["calls_scored"] > 0]
    row["picked_from"] = ", ".join(f"{c} {max(z, f):.2f}" for c, z, f in zip(scored["candidate"], scored["zero_shot"], scored["few_shot"]))
    row["scored_on"] = pick.scored_on
    if not pick.chosen:
        return {**row, "decision": f"skipped: {pick.reason}"}
    chosen = pick.table[pick.table["chosen"]].iloc[0]
    candidate = next(c for c in candidates if c.name == pick.chosen)
    checkpoint = base_checkpoint(candidate, home)
    rule, examples, _ = task_training_set(load_tokenizer(checkpoint), calls, int(chosen["context_window"]), settings.pick,
                                          min(candidate.context_length, settings.training.max_length))
    started = time.perf_counter()
    manifest = train_task_adapter(task_id, candidate.name, checkpoint, examples, rule, home / "adapters", settings.training)
    row["train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    evaluation = evaluate_task(task_id, calls, embeddings, candidate.name, checkpoint, candidate.context_length,
                               home / "adapters", settings.pick, settings.decision, embed, load=load,
                               training=settings.training)
    row["evaluate_s"] = time.perf_counter() - started
    scores = evaluation.table.set_index("variant")
    for variant in ("zero_shot", "few_shot", "adapter", "cross_validated"):
        if variant in scores.index:
            entry = scores.loc[variant]
            row[variant] = f"{entry['score']:.2f} ({entry['ci_low']:.2f}–{entry['ci_high']:.2f}, {int(entry['calls'])})"
    decision = evaluation.decision
    return {**row, "candidate": candidate.name, "steps": manifest["steps"], "replaceable": decision.replaceable,
            "decision": decision.reason, "kind": evaluation.kind}


def outcomes(prefix: str, tasks: list[tuple[str, pd.DataFrame]], embed, home: Path, settings: Settings) -> list[dict]:
    """`outcome` of each task in turn, each printed as it ends: a long workload's first results come in minutes."""
    rows = []
    for i, (title, calls) in enumerate(tasks):
        rows.append(outcome(f"{prefix}-{i}", title, calls, embed, home, settings))
        times = "/".join(f"{rows[-1].get(step, 0):.0f}" for step in ("pick_s", "train_s", "evaluate_s"))
        scores = ", ".join(f"{variant} {rows[-1][variant]}" for variant in ("zero_shot", "few_shot", "adapter") if variant in rows[-1])
        print(f"[{i + 1}/{len(tasks)}] {title} ({len(calls)} calls): {scores or rows[-1]['decision']}; "
              f"{'replaceable' if rows[-1].get('replaceable') else 'stays'}; steps 4/5/6 {times} s", flush=True)
    return rows


def report(name: str, rows: list[dict], total_calls: int, ceiling: float | None = None) -> None:
    table = pd.DataFrame(rows)
    print(f"\n== {name}")
    if table.empty:
        print("no task to run")
        return
    for column in ("pick_s", "train_s", "evaluate_s"):
        if column in table:
            table[column] = table[column].round(0)
    if {"pick_s", "train_s", "evaluate_s"} <= set(table.columns):
        table["total_min"] = ((table["pick_s"] + table["train_s"] + table["evaluate_s"]) / 60).round(1)
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        print(table.drop(columns=["decision"]).to_string(index=False))
        for row in rows:
            print(f"- {row['task']}: {row['decision']}")
    replaceable = sum(r["calls"] for r in rows if r.get("replaceable"))
    line = f"calls replaceable: {replaceable} of {total_calls} ({replaceable / total_calls:.0%})"
    if ceiling is not None:
        line += f"; step 3's ceiling (calls in trainable tasks): {ceiling:.0%}; target ≥ 50%"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="bfcl,long,toolbench")
    parser.add_argument("--tasks", type=int, default=3, help="tasks per workload, largest first")
    parser.add_argument("--conversations", type=int, default=120)
    parser.add_argument("--only", help="comma-separated words of the long demo's task titles (`search_direct_flight`): "
                                       "the tasks to run instead of the --tasks largest, one task's minutes without "
                                       "the others'")
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    settings = Settings.from_env()
    embed = embedder()
    with tempfile.TemporaryDirectory() as temp:
        home = Path(os.environ.get("SLM_BENCH_HOME", temp))
        print(f"machine: {os.cpu_count()} cores; models and adapters under {home}")
        if "bfcl" in workloads:
            if not (SHARED_DATA / "bfcl_v4").is_dir():
                print(f"\nBFCL: skipped, {SHARED_DATA / 'bfcl_v4'} not found (set SLM_SHARED_DATA)")
            else:
                tasks = bfcl_tasks(args.tasks)
                small = replace(settings, pick=replace(settings.pick, min_calls=20))  # the sets hold 23 to 29 prompts
                rows = outcomes("bfcl", tasks, embed, home, small)
                report("BFCL live function sets", rows, sum(len(c) for _, c in tasks))
        if "long" in workloads:
            logs = Path(temp) / "long"
            write_long_logs(logs, args.conversations)
            calls = clean(logs, scrub=True)
            tasks, ceiling = grouped_tasks(calls, embed, settings.pick.min_calls, 100 if args.only else args.tasks)
            print("tasks, largest first: " + "; ".join(f"{title} ({len(c)})" for title, c in tasks), flush=True)
            if args.only:
                tasks = [(title, c) for title, c in tasks if any(word in title for word in args.only.split(","))]
            print(f"long demo: {len(calls)} calls, {len(tasks)} tasks to run; step 3's ceiling {ceiling:.0%}", flush=True)
            rows = outcomes("long", tasks, embed, home, settings)
            report(f"long demo, {args.conversations} conversations", rows, len(calls), ceiling)
        if "toolbench" in workloads:
            if not toolbench_logs(Path(temp) / "toolbench"):
                print(f"\nToolBench: skipped, {SHARED_DATA} not found (set SLM_SHARED_DATA)")
            else:
                calls = clean(Path(temp) / "toolbench", scrub=True)
                tasks, ceiling = grouped_tasks(calls, embed, settings.pick.min_calls, args.tasks)
                rows = outcomes("toolbench", tasks, embed, home, settings)
                report("ToolBench trajectories", rows, len(calls), ceiling)


if __name__ == "__main__":
    main()
