"""Step 4, pick: a task's calls → `picks`, every candidate's fit and scores, and the one chosen."""

from functools import partial

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    Output,
    PartitionsDefinition,
    ResourceParam,
    asset,
)

from finetune.adapters import promotions
from finetune.candidates import load_candidates
from pipeline.decision import fell_short
from pipeline.settings import Settings
from pipeline.tasks import calls_and_embeddings
from pipeline.warehouse import Warehouse


def pick_asset(tasks: PartitionsDefinition) -> AssetsDefinition:
    """Step 4, one run per task partition."""

    @asset(partitions_def=tasks, deps=[AssetKey("task_clusters")], group_name="pick")
    def picks(
        context: AssetExecutionContext, warehouse: ResourceParam[Warehouse], settings: ResourceParam[Settings]
    ) -> Output[pd.DataFrame]:
        """Profile the task with each candidate SLM, score the ones that fit it zero- and few-shot, pick one."""
        # imported here, not at the top: the code location (each sensor tick, each run's start) loads without torch
        from finetune.engines import load_engine
        from finetune.models import encode
        from finetune.pick import pick_candidate

        task_id = context.partition_key
        calls, embeddings = calls_and_embeddings(warehouse, task_id, encode)
        config = settings.pick
        candidates = [
            c for c in load_candidates(settings.candidates_file) if not config.candidates or c.name in config.candidates
        ]
        engines = partial(load_engine, config=settings.engine, cache=settings.engines_dir)
        given_up = fell_short(promotions(settings.adapters_dir, task_id))
        picked = pick_candidate(task_id, calls, embeddings, candidates, settings.home, config, encode, engines, given_up)
        context.log.info(f"{task_id}: {picked.chosen or 'no candidate'} ({picked.reason}), generated with {picked.engine or 'nothing'}")
        shown = picked.table.drop(columns=["task_id", "context_length", "serving_usd_per_1m_tokens"])
        return Output(
            picked.table,
            metadata={
                "chosen": picked.chosen or "none",
                "reason": picked.reason,
                "engine": picked.engine or "none",
                "scored on": picked.scored_on or "nothing scored",
                "seconds": round(picked.seconds),
                "calls": len(calls),
                "candidates": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f")),
            },
        )

    return picks
