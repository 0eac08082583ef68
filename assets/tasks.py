"""Step 3, tasks: `clean_calls` → `task_clusters` (call → task) and `tasks` (one row per task), a partition per task."""

import base64

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    MetadataValue,
    Output,
    ResourceParam,
    multi_asset,
)

from pipeline.settings import Settings
from pipeline.tasks import NOISE, PreviousCycle, embed, find_tasks, signature_embeddings, task_map, task_signature
from pipeline.warehouse import Warehouse


def tasks_assets(tasks: DynamicPartitionsDefinition) -> AssetsDefinition:
    """Step 3 over all clean calls; each task it finds becomes a partition of `tasks`, which steps 4–6 run per."""

    @multi_asset(
        ins={"clean_calls": AssetIn()},
        outs={
            "task_clusters": AssetOut(
                description="Each clean call's task (`unassigned`: no recurring task, stays with the LLM)."
            ),
            "tasks": AssetOut(
                description="One row per recurring task: keywords, central example, reply types, tools, shares."
            ),
        },
        group_name="tasks",
    )
    def find_recurring_tasks(
        context: AssetExecutionContext,
        clean_calls: pd.DataFrame,
        warehouse: ResourceParam[Warehouse],
        settings: ResourceParam[Settings],
    ):
        """Group the calls into tasks (one per tool, text replies by what they do), keep last cycle's task ids."""
        # imported here, not at the top: the code location (each sensor tick, each run's start) loads without torch
        from finetune.models import encode

        def embed_texts(texts: list[str]):
            return embed(texts, encode, warehouse)

        signatures = [task_signature(call) for call in clean_calls.to_dict("records")]
        embeddings = signature_embeddings(signatures, embed_texts)
        previous = PreviousCycle(warehouse.read("tasks"), warehouse.read("task_clusters"))
        found = find_tasks(clean_calls, signatures, embeddings, embed_texts, previous, settings.clustering,
                           settings.prices, settings.pick.min_calls)
        new_ids = [t for t in found.tasks["task_id"] if not context.instance.has_dynamic_partition(tasks.name, t)]
        context.instance.add_dynamic_partitions(tasks.name, new_ids)

        picture = task_map(embeddings, found.task_clusters["task_id"].tolist())
        settings.write_report("task_map.png", picture)
        unassigned = found.task_clusters[found.task_clusters["task_id"] == NOISE]
        context.log.info(
            f"{len(found.tasks)} tasks ({len(new_ids)} new) over {len(clean_calls)} calls; {len(unassigned)} unassigned"
        )
        yield Output(
            found.task_clusters,
            "task_clusters",
            metadata={
                "calls": len(clean_calls),
                "unassigned": len(unassigned),
                "unassigned_reasons": MetadataValue.json(unassigned["reason"].value_counts().head(10).to_dict()),
                "task_map": MetadataValue.md(
                    f"![calls by task](data:image/png;base64,{base64.b64encode(picture).decode()})"
                ),
            },
        )
        table = found.tasks[["task_id", "title", "calls", "share_of_calls", "share_of_spend", "formed", "lineage"]]
        yield Output(
            found.tasks,
            "tasks",
            metadata={
                "tasks": len(found.tasks),
                "new_tasks": MetadataValue.json(new_ids),
                "tasks_table": MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")),
            },
        )

    return find_recurring_tasks
