"""Step 6 on live calls: each task's live agreement, its adapter's replies scored against the LLM's on the same calls
(the gateway's live pairs, `pipeline/served.py`) with the metrics that score held-out calls (`pipeline/metrics.py`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from finetune.prompts import reply_kind, target_text
from pipeline.metrics import bootstrap_ci, score_replies
from pipeline.warehouse import frame


def live_agreement(pairs: pd.DataFrame, embed: Callable[[list[str]], np.ndarray], window: int) -> pd.DataFrame:
    """One row per task and adapter version: the mean score of its latest `window` pairs."""
    rows = []
    for (task_id, adapter), group in pairs.groupby(["task_id", "adapter"]):
        latest = group.sort_values("at").tail(window)
        llm = [{"response_text": t, "response_tool_calls": c} for t, c in zip(latest["llm_text"], latest["llm_tool_calls"])]
        kind = Counter(reply_kind(call) for call in llm).most_common(1)[0][0]
        scores = list(score_replies(kind, [target_text(c) for c in llm], list(latest["slm_text"]), embed)["score"])
        low, high = bootstrap_ci(scores)
        rows.append({
            "task_id": task_id, "adapter_version": int(adapter.rsplit("/v", 1)[1]), "kind": kind,
            "pairs": len(scores), "agreement": float(np.mean(scores)), "ci_low": low, "ci_high": high,
            "fallbacks": int((latest["fallback"] != "").sum()), "first_at": latest["at"].min(), "last_at": latest["at"].max(),
        })
    return frame("live_agreement", rows)
