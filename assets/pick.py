"""Step 4, pick: a task's calls → `slm_selection`, every candidate's fit and scores, and the one chosen."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output, asset
from dagster_duckdb import DuckDBResource

from assets.inputs import calls_and_embeddings, encode
from finetune.pick import pick_candidate
from pipeline.partitions import tasks as task_partitions
from pipeline.resources import Conversion


@asset(
    partitions_def=task_partitions,
    deps=[AssetKey("task_clusters")],
    metadata={"partition_expr": "task_id"},
    group_name="pick",
)
def slm_selection(context: AssetExecutionContext, warehouse: DuckDBResource, conversion: Conversion) -> Output[pd.DataFrame]:
    """Profile the task with each candidate SLM, score the ones that fit it zero- and few-shot, choose one."""
    task_id = context.partition_key
    calls, embeddings = calls_and_embeddings(warehouse, task_id)
    selection = conversion.selection()
    candidates = [c for c in conversion.candidates() if not selection.candidates or c.name in selection.candidates]
    picked = pick_candidate(task_id, calls, embeddings, candidates, conversion.home_path, selection, encode)
    context.log.info(f"{task_id}: {picked.chosen or 'no candidate'} ({picked.reason})")
    shown = picked.table.drop(columns=["task_id", "context_length", "serving_usd_per_1m_tokens"])
    return Output(
        picked.table,
        metadata={
            "chosen": picked.chosen or "none",
            "reason": picked.reason,
            "calls": len(calls),
            "candidates": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f")),
        },
    )
