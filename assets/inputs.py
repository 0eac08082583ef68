"""What the per-task steps read: one task's calls, oldest first, and their signature embeddings (cached)."""

import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from finetune.models import embedding_model
from pipeline.tasks import embed, signature_embeddings, task_calls


def encode(texts: list[str]) -> np.ndarray:
    return embedding_model().encode(texts, batch_size=64, normalize_embeddings=True)


def calls_and_embeddings(warehouse: DuckDBResource, task_id: str) -> tuple[pd.DataFrame, np.ndarray]:
    with warehouse.get_connection() as connection:
        calls = task_calls(connection, task_id)
        embeddings = signature_embeddings(list(calls["signature"]), lambda texts: embed(texts, encode, connection))
    return calls, embeddings
