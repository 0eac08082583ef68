"""Step 3's embedding throughput on the demo logs: a cold run beside a rerun served by the warehouse cache.

    .venv/bin/python bench/embed.py   # after `make demo`, which leaves the clean calls in .slm/warehouse.duckdb
"""

from __future__ import annotations

import os
import sys
import time

import duckdb

from finetune.models import embedding_model
from pipeline.settings import Settings
from pipeline.tasks import embed, signature_embeddings, task_signature


def main() -> None:
    warehouse = Settings.from_env().warehouse
    if not os.path.exists(warehouse):
        sys.exit(f"no warehouse at {warehouse}: run `make demo` first")
    with duckdb.connect(warehouse, read_only=True) as source:
        calls = source.execute("select * from clean_calls").df()
    signatures = [task_signature(call) for call in calls.to_dict("records")]
    model = embedding_model()
    encode = lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True)  # noqa: E731
    texts = 2 * len(signatures)  # each signature is embedded as two halves, structure and message
    with duckdb.connect() as cache:  # an empty cache of its own: the first run embeds everything new
        for run in ("cold", "cached"):
            started = time.perf_counter()
            signature_embeddings(signatures, lambda batch: embed(batch, encode, cache))
            seconds = time.perf_counter() - started
            print(f"{run:<7} {len(signatures)} calls, {texts} texts: {seconds:6.1f} s, {texts / seconds:8.0f} texts/s")


if __name__ == "__main__":
    main()
