"""Batched generation by prompt length: seconds per reply as `finetune.generate` runs it (each padded batch's prompts
read alone, then decoded together) beside the two paths it replaced (read in the padded batch, under the batch
bound `BATCH_TOKENS` and under the 32,768 padded tokens of before), in one run, on SmolLM2-135M.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/batching.py [--repeats 3]

Prompts of about 300, 1,000, 2,000 and 4,500 tokens (a real agent's logged prompt is 4-7k), replies of 30 and 128
tokens (greedy, so every run generates the same tokens). A batch read together reads its prompts under a padding
mask, which on a CPU costs more than batching saves: prefill is compute-bound, so only decoding gains from sharing a
batch. The speed-up is read alone against read in the batch, both under `BATCH_TOKENS`. Medians of `--repeats` runs,
since torch's threads are noisy on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.candidates import load_candidates  # noqa: E402
from finetune.generate import BATCH_TOKENS, generate  # noqa: E402
from finetune.models import base_checkpoint, load_for_inference, load_tokenizer  # noqa: E402

BASELINE = 32_768  # the bound before: rows of a long prompt shared a batch
WORKLOADS = [(150, 32, 30), (150, 32, 128), (500, 12, 30), (1000, 8, 30), (1000, 8, 128), (2200, 6, 30)]  # words, prompts, reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SLM_HOME", ".slm")))
    args = parser.parse_args()
    candidate = next(c for c in load_candidates() if c.name == "smollm2-135m-instruct")
    checkpoint = base_checkpoint(candidate, args.home)
    model, tokenizer = load_for_inference(checkpoint), load_tokenizer(checkpoint)
    words = (Path(__file__).resolve().parents[1] / "README.md").read_text().split()
    rng = random.Random(0)
    print(f"machine: {os.cpu_count()} cores; seconds per reply, median of {args.repeats}")
    print(f"{'prompt tokens':>13} {'reply':>5} {'prompts':>7} {f'read in {BASELINE:,}':>15} {f'read in {BATCH_TOKENS:,}':>14} "
          f"{'read alone':>11} {'speed-up':>8}")
    for size, count, reply in WORKLOADS:
        prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(int(size * 0.85), int(size * 1.15)))) for _ in range(count)]
        tokens = statistics.median(len(ids) for ids in tokenizer(prompts).input_ids)
        seconds = [statistics.median(generate(model, tokenizer, prompts, reply, batch_tokens=bound, read_alone=alone).seconds_per_call
                                     for _ in range(args.repeats))
                   for bound, alone in ((BASELINE, False), (BATCH_TOKENS, False), (BATCH_TOKENS, True))]
        print(f"{tokens:>13,.0f} {reply:>5} {count:>7} {seconds[0]:>14.2f}s {seconds[1]:>13.2f}s {seconds[2]:>10.2f}s "
              f"{seconds[1] / seconds[2]:>7.2f}×", flush=True)


if __name__ == "__main__":
    main()
