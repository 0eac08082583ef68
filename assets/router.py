"""Step 3, the router: `clean_calls` and `task_clusters` → the classifier the gateway routes live calls with, and
`task_router`, how well it agrees with step 3 on calls it did not learn from."""

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, ResourceParam, asset

from pipeline.router import agreement, held_out_split, tradeoff, train_router
from pipeline.settings import Settings


@asset(ins={"clean_calls": AssetIn(), "task_clusters": AssetIn()}, group_name="tasks")
def task_router(
    context: AssetExecutionContext, clean_calls: pd.DataFrame, task_clusters: pd.DataFrame,
    settings: ResourceParam[Settings],
) -> Output[pd.DataFrame]:
    """Learn each call's task from its request alone (a live call has no reply yet), check it on every fifth call of
    each task, then learn from all of them and write the router to SLM_HOME/serving for the gateway."""
    calls = clean_calls.merge(task_clusters[["call_id", "task_id"]], on="call_id").sort_values(["called_at", "call_id"])
    records, task_ids = calls.to_dict("records"), calls["task_id"].tolist()
    held = held_out_split(task_ids)
    trained = train_router([r for r, h in zip(records, held) if not h], [t for t, h in zip(task_ids, held) if not h])
    held_calls, held_tasks = [r for r, h in zip(records, held) if h], [t for t, h in zip(task_ids, held) if h]
    checked = agreement(trained, held_calls, held_tasks, settings.serve.min_confidence)
    path = train_router(records, task_ids).save(settings.serving_dir)
    context.log.info(f"router: {checked.agreement:.1%} agreement with step 3 on the {checked.routed_share:.0%} of "
                     f"held-out calls it routed; written to {path}")
    return Output(checked.table, metadata={
        "agreement": round(checked.agreement, 4),
        "routed_share": round(checked.routed_share, 4),
        "held_out_calls": int(held.sum()),
        "path": MetadataValue.path(str(path)),
        "per_task": MetadataValue.md(checked.table.to_markdown(index=False)),
        "by_min_confidence": MetadataValue.md(tradeoff(trained, held_calls, held_tasks).to_markdown(index=False)),
    })
