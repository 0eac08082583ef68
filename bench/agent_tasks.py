"""Step 3 on agent logs shaped like real ones: how many tasks per tool, how much of the log step 5 can train on, and
how much stays unassigned.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/agent_tasks.py [--conversations 240] [--no-scrub]

Workloads, each collected and scrubbed as steps 1–2 do (`--no-scrub` skips step 2, faster, with raw names in the
replies), then grouped by the step (`pipeline.tasks.find_tasks`, default settings, `min_calls` 30):
- `demo.long_logs`' airline conversations: one agent, fourteen tools offered in every call, long and personal
  conversations of eleven kinds of request, where the same job is asked about many different things;
- ToolBench's 15 trajectories under ../shared/data (skipped, saying why, where absent): every conversation
  offers its own tools;
- the demo logs, whose agent does seven jobs.

Per workload: calls, tasks, tasks per tool called (target 1.0: one task per tool unless a split is justified), the
share of calls in tasks of at least `min_calls` (target ≥ 90%: the rest cannot be trained), the share `unassigned`
(≤ 5%) and its reasons, and the titles, which must hold no placeholder or id-like token. Where the generator wrote
the job of every reply (`demo.long_logs.read_jobs`), the text tasks are scored against it (NMI, and the tasks per
job).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""  # before Presidio is imported: no public-suffix download
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from demo.logs import write_demo_logs  # noqa: E402
from demo.long_logs import read_jobs, write_long_logs  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.scrub import open_analyzer, scrub_calls  # noqa: E402
from pipeline.settings import PickConfig, ScrubConfig, Settings  # noqa: E402
from pipeline.tasks import NOISE, find_tasks, signature_embeddings, task_signature  # noqa: E402

SHARED_DATA = Path(os.environ.get("SLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MIN_CALLS = PickConfig.min_calls
PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")
UNREADABLE = re.compile(rf"{PLACEHOLDER.pattern}|\b(?=\w*\d)(?=\w*[A-Za-z])\w{{4,}}\b")


def embedder():
    from finetune.models import encode

    cache: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in cache]
        if new:
            cache.update(zip(new, encode(new)))
        return np.array([cache[t] for t in texts], dtype=np.float32)

    return embed


def toolbench_logs(folder: Path) -> bool:
    answers = sorted((SHARED_DATA / "toolbench_chatgpt_dfs_examples" / "answer").glob("*/*.json"))
    if not answers:
        return False
    lines = []
    for path in answers:
        answer = json.loads(path.read_text())["answer_generation"]
        lines += [json.dumps({"messages": m, "functions": answer["function"]}) for m in answer.get("train_messages", [])]
    folder.mkdir(parents=True)
    (folder / "toolbench.jsonl").write_text("\n".join(lines) + "\n")
    return True


def clean(folder: Path, scrub: bool) -> pd.DataFrame:
    calls = LogFolder.of(Settings(home=folder.parent, logs_dir=folder)).collect().calls
    if not scrub:
        return calls
    config = ScrubConfig()
    with open_analyzer(config) as analyzer:
        result = scrub_calls(calls, analyzer, config)
    assert result.stats.reconciles(), result.stats
    return result.clean_calls


def report(name: str, calls: pd.DataFrame, jobs: dict[tuple[str, int, int], str] | None = None) -> None:
    embed = embedder()
    started = time.perf_counter()
    signatures = [task_signature(c) for c in calls.to_dict("records")]
    found = find_tasks(calls, signatures, signature_embeddings(signatures, embed), embed, min_calls=MIN_CALLS)
    seconds = time.perf_counter() - started
    tasks, clusters = found.tasks, found.task_clusters
    weight = calls["occurrences"].to_numpy()
    in_trainable = clusters["task_id"].isin(set(tasks.loc[tasks["calls"] >= MIN_CALLS, "task_id"])).to_numpy()
    unassigned = (clusters["task_id"] == NOISE).to_numpy()
    per_tool = defaultdict(set)
    for task_id, tools in zip(tasks["task_id"], tasks["tools"]):
        for tool in json.loads(tools):
            per_tool[tool].add(task_id)
    print(f"\n{name}: {len(calls)} calls, {len(tasks)} tasks, grouped in {seconds:.0f} s (embeddings included)")
    print(f"  tasks per tool called: {np.mean([len(t) for t in per_tool.values()]) if per_tool else float('nan'):.2f}"
          f" over {len(per_tool)} tools (target 1.0)")
    print(f"  calls in tasks of ≥ {MIN_CALLS}: {weight[in_trainable].sum() / weight.sum():.0%} (target ≥ 90%)")
    print(f"  unassigned: {weight[unassigned].sum() / weight.sum():.1%} (target ≤ 5%)"
          + "".join(f"\n    {n} × {reason}" for reason, n in Counter(clusters["reason"][unassigned]).most_common(3)))
    # a tool's own name is what its task is called, digits and all (`packages_v2_track`), but not a placeholder
    unreadable = [t for t, kind in zip(tasks["title"], tasks["kind"])
                  if UNREADABLE.search(t.removeprefix(kind[5:])) or PLACEHOLDER.search(t)]
    print(f"  titles with a placeholder or an id-like token: {len(unreadable)}" + (f" {unreadable[:3]}" if unreadable else ""))
    if jobs:
        _score_against_jobs(calls, clusters, jobs)
    table = tasks.assign(share=(tasks["share_of_calls"] * 100).round().astype(int).astype(str) + "%")
    print(table[["task_id", "title", "calls", "share", "formed"]].to_string(index=False, max_colwidth=60))


def _score_against_jobs(calls: pd.DataFrame, clusters: pd.DataFrame, jobs: dict) -> None:
    from sklearn.metrics import normalized_mutual_info_score

    truth = [jobs.get((row.source_file, row.source_line, row.turn), "?") for row in calls.itertuples()]
    text = [i for i, job in enumerate(truth) if job.startswith("text:")]
    if not text:
        return
    found = clusters["task_id"].to_numpy()[text]
    true = [truth[i] for i in text]
    print(f"  text replies against the generator's jobs: NMI {normalized_mutual_info_score(true, found):.2f}, "
          f"{len(set(true))} jobs, {len(set(found))} tasks")
    for job, n in Counter(true).most_common():
        tasks = Counter(f for f, t in zip(found, true) if t == job)
        print(f"    {job:<28}{n:>5} calls → " + ", ".join(f"{t} ({k})" for t, k in tasks.most_common(3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=240)
    parser.add_argument("--no-scrub", action="store_true", help="group the raw calls (faster; names left in replies)")
    args = parser.parse_args()
    scrub = not args.no_scrub
    with tempfile.TemporaryDirectory() as home:
        folder = Path(home) / "airline"
        transcripts = write_long_logs(folder, args.conversations)
        jobs = {(row["source_file"], row["source_line"], row["turn"]): row["job"] for row in read_jobs(transcripts)}
        report(f"airline agent, {args.conversations} conversations", clean(folder, scrub), jobs)
        if toolbench_logs(Path(home) / "toolbench"):
            report("ToolBench trajectories", clean(Path(home) / "toolbench", scrub))
        else:
            print(f"\nToolBench: skipped, {SHARED_DATA} not found (set SLM_SHARED_DATA)")
        write_demo_logs(Path(home) / "demo")
        report("demo agent (7 jobs)", clean(Path(home) / "demo", scrub))


if __name__ == "__main__":
    main()
