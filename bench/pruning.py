"""Static-text pruning and context fitting on long agent logs, against the same calls with the whole prompt, in one
run, on SmolLM2-135M.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/pruning.py [--conversations 60] [--timed-steps 3] [--home .slm]
        [--score-task tool:route_ticket] [--no-long-logs]

Part 1, per task, on long logs: the airline agent of `demo.long_logs` (a ~1,100-token policy and ~2,500 tokens
of tool schemas in every call, multi-turn with JSON tool results) and the ToolBench transcripts in `../shared/data`
(skipped, with a message, where that folder is absent). An airline task is the calls with one reply type (one
tool, or text), the split step 3 makes of one agent; ToolBench's calls, each offering its own tools, are one task.
For each: mean prompt tokens per training example as logged and as the adapter reads them (`InputRule`: the
pruning learnt from the task's training calls, a 4-message window), the ratio, how many calls fit the model's
8,192-token context each way, and training time per epoch each way: the median interval between steps over
`--timed-steps` LoRA steps of batch 1 (the first, warm-up, step left out) times the task's training examples.
Nothing is truncated: an example longer than the context is left out and counted.

Part 2, held-out score both ways on the standard demo's calls of one reply type (`--score-task`, repeatable; ticket
routing by default), tasks small enough to train on their whole prompt here: the training defaults (LoRA r 8, 30
steps of batch 4, same seed) once on the logged prompt and once pruned, each scored on the same 24 held-out calls
(name match × field F1 against the LLM's logged call).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from finetune.candidates import load_candidates  # noqa: E402
from finetune.engines import TransformersEngine  # noqa: E402
from finetune.evaluate import score_model  # noqa: E402
from finetune.models import base_checkpoint, load_base  # noqa: E402
from finetune.prompts import adapter_examples, reply_kind  # noqa: E402
from finetune.train import TrainConfig, train_adapter  # noqa: E402
from pipeline.collect import LogFile, assemble, parse_log_file  # noqa: E402
from pipeline.context import ContextPolicy, InputRule  # noqa: E402
from demo.logs import write_demo_logs  # noqa: E402
from demo.long_logs import write_long_logs  # noqa: E402
from pipeline.pruning import learn_pruning  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.pick import split_by_time  # noqa: E402
from pipeline.tasks import reply_type  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WINDOW = 4
HELD_OUT_SCORED = 24


def collect(path: Path) -> pd.DataFrame:
    files = [LogFile(path, path.name, path.name, datetime(2026, 11, 2), path.stat().st_size)]
    return assemble(files, [parse_log_file(path, 64 * 2**20)]).calls


def toolbench(folder: Path) -> Path:
    lines = []
    for path in sorted((SHARED / "toolbench_chatgpt_dfs_examples" / "answer").glob("*/*.json")):
        answer = json.loads(path.read_text())["answer_generation"]
        lines += [json.dumps({"messages": m, "functions": answer["function"]}) for m in answer.get("train_messages", [])]
    (folder / "toolbench.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "toolbench.jsonl"


def step_seconds(checkpoint: Path, examples: list[dict], steps: int, out: Path) -> float:
    stamps: list[float] = []
    config = TrainConfig(batch_size=1, min_steps=steps, max_steps=steps, max_length=8192)
    train_adapter(checkpoint, examples, out, config, on_log=lambda *_: stamps.append(time.perf_counter()))
    return statistics.median(np.diff(stamps))


def long_logs(name: str, tasks: dict[str, pd.DataFrame], checkpoint: Path, context: int, timed_steps: int, tmp: Path) -> list[dict]:
    _, tokenizer = load_base(checkpoint)
    rows = []
    for kind, group in tasks.items():
        train, _ = split_by_time(group, 0.2)
        records = train.to_dict("records")
        if len(records) < 4:
            continue
        full = adapter_examples(tokenizer, records, InputRule(), context)
        rule = InputRule(learn_pruning(records), ContextPolicy(window=WINDOW))
        pruned = adapter_examples(tokenizer, records, rule, context)
        seconds = [step_seconds(checkpoint, made.examples[: timed_steps], timed_steps, tmp / f"{kind}-{i}")
                   if made.examples else float("nan") for i, made in enumerate((full, pruned))]
        row = {
            "logs": name, "task": kind, "train calls": len(records),
            "tokens/example logged": np.mean(full.tokens), "tokens/example pruned": np.mean(pruned.tokens),
            "fit logged": f"{len(full.examples)}/{len(records)}", "fit pruned": f"{len(pruned.examples)}/{len(records)}",
            "s/epoch logged": seconds[0] * len(full.examples), "s/epoch pruned": seconds[1] * len(pruned.examples),
        }
        row["token ratio"] = row["tokens/example logged"] / row["tokens/example pruned"]
        row["time ratio"] = row["s/epoch logged"] / row["s/epoch pruned"]
        print(f"  {name} {kind}: {row['token ratio']:.1f}x fewer tokens, {row['time ratio']:.1f}x less time per epoch", flush=True)
        rows.append(row)
    return rows


def held_out_scores(checkpoint: Path, task: str, tmp: Path) -> list[dict]:
    write_demo_logs(tmp / "demo", calls=2000)
    calls = LogFolder.of(Settings(home=tmp / "home", logs_dir=tmp / "demo")).collect().calls
    calls = calls[[reply_type(c) == task for c in calls.to_dict("records")]]
    train, held_out = split_by_time(calls, 0.2)
    records = train.to_dict("records")
    sample = held_out.iloc[np.unique(np.linspace(0, len(held_out) - 1, HELD_OUT_SCORED).astype(int))].to_dict("records")
    rows = []
    for name, rule in (("logged prompt", InputRule()), ("pruned", InputRule(learn_pruning(records), ContextPolicy(window=WINDOW)))):
        model, tokenizer = load_base(checkpoint)
        made = adapter_examples(tokenizer, records, rule, 8192)
        out = tmp / f"routing-{name}"
        result = train_adapter(checkpoint, made.examples, out, TrainConfig())
        scored = score_model(TransformersEngine(checkpoint, out), [rule.prepare(c) for c in sample], reply_kind(sample[0]), 64,
                             embed=None, logged=sample)
        rows.append({"task": task, "input": name, "tokens/example": np.mean(made.tokens), "train calls": len(made.examples),
                     "steps": result.steps, "train s": result.seconds, "s/step": result.seconds / result.steps,
                     "held-out score": scored.mean, "exact args": float(scored.scores["exact_args"].mean())})
        print(f"  {task}, {name}: score {scored.mean:.3f} after {result.seconds:.0f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=60)
    parser.add_argument("--timed-steps", type=int, default=3)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SLM_HOME", ".slm")))
    parser.add_argument("--score-task", action="append", help="demo reply type(s) for part 2 (default: tool:route_ticket)")
    parser.add_argument("--no-long-logs", action="store_true", help="part 2 only")
    args = parser.parse_args()
    smollm2 = load_candidates()[0]
    checkpoint = base_checkpoint(smollm2, args.home)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = []
        if not args.no_long_logs:
            print("Part 1: long logs", flush=True)
            airline = collect(write_long_logs(tmp, args.conversations))
            by_reply = dict(list(airline.groupby([reply_type(c) for c in airline.to_dict("records")])))
            rows = long_logs("airline", by_reply, checkpoint, smollm2.context_length, args.timed_steps, tmp)
            if (SHARED / "toolbench_chatgpt_dfs_examples").exists():
                # one agent whose calls each offer their own tools: its replies scatter over many tools, so one task
                rows += long_logs("ToolBench", {"all calls": collect(toolbench(tmp))}, checkpoint, smollm2.context_length,
                                  args.timed_steps, tmp)
            else:
                print(f"  ToolBench skipped: {SHARED / 'toolbench_chatgpt_dfs_examples'} is absent")
        print("Part 2: held-out score, logged prompt against pruned", flush=True)
        scores = [row for task in args.score_task or ["tool:route_ticket"] for row in held_out_scores(checkpoint, task, tmp)]
    if rows:
        print(f"\nSmolLM2-135M, context {smollm2.context_length}; prompt tokens per training example and training time per "
              f"epoch (batch 1), logged prompt (the baseline) against pruned + last {WINDOW} messages:\n")
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))
    print("\nHeld-out score on demo tasks, the same 24 calls, the training defaults each way:\n")
    table = pd.DataFrame(scores)
    print(table.to_markdown(index=False, floatfmt=".3f"))
    for task, pair in table.groupby("task", sort=False):
        logged, pruned = pair.iloc[0], pair.iloc[1]
        print(f"{task}: pruned − logged {100 * (pruned['held-out score'] - logged['held-out score']):+.1f} points (target ≥ −2); "
              f"{logged['tokens/example'] / pruned['tokens/example']:.1f}x fewer tokens; {logged['s/step'] / pruned['s/step']:.1f}x faster per step")


if __name__ == "__main__":
    main()
