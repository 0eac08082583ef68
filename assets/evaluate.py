"""Step 6, evaluate: a task's held-out calls → `evaluations`, the base model beside its adapters, the promotion of a
better adapter, and whether the task can move to its SLM."""

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output, asset
from dagster_duckdb import DuckDBResource

from assets.inputs import calls_and_embeddings, encode
from finetune.evaluate import EVALUATION_COLUMNS, evaluate_task
from finetune.models import base_checkpoint
from pipeline.partitions import tasks as task_partitions
from pipeline.resources import Conversion


@asset(
    partitions_def=task_partitions,
    deps=[AssetKey("task_clusters")],
    metadata={"partition_expr": "task_id"},
    group_name="evaluate",
)
def evaluations(
    context: AssetExecutionContext, adapters: pd.DataFrame, warehouse: DuckDBResource, conversion: Conversion
) -> Output[pd.DataFrame]:
    """Score zero-shot, few-shot and fine-tuned on the same held-out calls; promote a better adapter; decide."""
    task_id = context.partition_key
    if adapters.empty:
        context.log.warning(f"{task_id}: no adapter to evaluate")
        empty = pd.DataFrame(columns=list(EVALUATION_COLUMNS)).astype(EVALUATION_COLUMNS)
        return Output(empty, metadata={"skipped": "no adapter trained"})
    name = adapters["candidate"].iloc[-1]
    candidate = next(c for c in conversion.candidates() if c.name == name)
    calls, embeddings = calls_and_embeddings(warehouse, task_id)
    result = evaluate_task(
        task_id, calls, embeddings, name, base_checkpoint(candidate, conversion.home_path), candidate.context_length,
        conversion.adapters_root,
        conversion.selection(), conversion.decision(), encode, conversion.judge(),
    )
    if result.promotion:
        verdict = "promoted" if result.promotion["promoted"] else "kept the promoted adapter over"
        context.log.info(f"{task_id}: {verdict} v{result.promotion['version']} ({result.promotion['score']:.3f} "
                         f"against {result.promotion['champion_score'] if result.promotion['champion'] else 'none'})")
    context.log.info(f"{task_id}: {'replaceable' if result.decision.replaceable else 'stays with the LLM'}, {result.decision.reason}")
    shown = result.table[["variant", "adapter_version", "calls", "calls_unfit", "prompt_tokens", "score", "ci_low", "ci_high", "seconds_per_call", "tokens_per_second", "promoted"]]
    return Output(
        result.table,
        metadata={
            "replaceable": result.decision.replaceable,
            "reason": result.decision.reason,
            "score": result.decision.score,
            "ci_95": MetadataValue.json([result.decision.ci_low, result.decision.ci_high]),
            "promoted_version": result.promoted_version or 0,
            "variants": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f")),
        },
    )
