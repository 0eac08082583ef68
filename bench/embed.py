"""Step 3's embedding throughput on the demo logs: a cold run beside a rerun served by the warehouse cache.

    .venv/bin/python bench/embed.py   # after `make demo`, which leaves the clean calls in .slm/warehouse.duckdb
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from finetune.models import encode
from pipeline.settings import Settings
from pipeline.tasks import embed, signature_embeddings, task_signature
from pipeline.warehouse import DuckDBWarehouse


def main() -> None:
    warehouse = Settings.from_env().warehouse
    if not os.path.exists(warehouse):
        sys.exit(f"no warehouse at {warehouse}: run `make demo` first")
    calls = DuckDBWarehouse(warehouse).read("clean_calls")
    signatures = [task_signature(call) for call in calls.to_dict("records")]
    texts = 2 * len(signatures)  # each signature is embedded as two halves, structure and message
    with tempfile.TemporaryDirectory() as folder:  # an empty cache of its own: the first run embeds everything new
        cache = DuckDBWarehouse(f"{folder}/cache.duckdb")
        for run in ("cold", "cached"):
            started = time.perf_counter()
            signature_embeddings(signatures, lambda batch: embed(batch, encode, cache))
            seconds = time.perf_counter() - started
            print(f"{run:<7} {len(signatures)} calls, {texts} texts: {seconds:6.1f} s, {texts / seconds:8.0f} texts/s")


if __name__ == "__main__":
    main()
