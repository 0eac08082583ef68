"""Step 6, evaluate: a task's held-out calls → `evaluations`, the base model beside its adapters, the promotion of a
better adapter, and whether the task can move to its SLM."""

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

from finetune.candidates import load_candidates
from pipeline.judge import judge_from
from pipeline.settings import Settings
from pipeline.tasks import calls_and_embeddings
from pipeline.warehouse import Warehouse, frame


def evaluate_asset(tasks: PartitionsDefinition) -> AssetsDefinition:
    """Step 6, one run per task partition."""

    @asset(partitions_def=tasks, deps=[AssetKey("task_clusters")], group_name="evaluate")
    def evaluations(
        context: AssetExecutionContext,
        adapters: pd.DataFrame,
        warehouse: ResourceParam[Warehouse],
        settings: ResourceParam[Settings],
    ) -> Output[pd.DataFrame]:
        """Score zero-shot, few-shot and fine-tuned on the same held-out calls; promote a better adapter; decide."""
        # imported here, not at the top: the code location (each sensor tick, each run's start) loads without torch
        from finetune.engines import load_engine
        from finetune.evaluate import evaluate_task
        from finetune.models import base_checkpoint, encode

        task_id = context.partition_key
        if adapters.empty:
            context.log.warning(f"{task_id}: no adapter to evaluate")
            return Output(frame("evaluations"), metadata={"skipped": "no adapter trained"})
        name = adapters["candidate"].iloc[-1]
        candidate = next(c for c in load_candidates(settings.candidates_file) if c.name == name)
        calls, embeddings = calls_and_embeddings(warehouse, task_id, encode)
        result = evaluate_task(
            task_id,
            calls,
            embeddings,
            name,
            base_checkpoint(candidate, settings.home),
            candidate.context_length,
            settings.adapters_dir,
            settings.pick,
            settings.decision,
            encode,
            judge_from(settings.judge),
            partial(load_engine, config=settings.engine, cache=settings.engines_dir),
            settings.training,
        )
        if result.promotion:
            verdict = "promoted" if result.promotion["promoted"] else "kept the promoted adapter over"
            context.log.info(
                f"{task_id}: {verdict} v{result.promotion['version']} ({result.promotion['score']:.3f} "
                f"against {result.promotion['champion_score'] if result.promotion['champion'] else 'none'})"
            )
        context.log.info(
            f"{task_id}: {'replaceable' if result.decision.replaceable else 'stays with the LLM'}, {result.decision.reason}"
        )
        shown = result.table[
            [
                "variant",
                "adapter_version",
                "calls",
                "calls_unfit",
                "prompt_tokens",
                "score",
                "ci_low",
                "ci_high",
                "seconds_per_call",
                "tokens_per_second",
                "promoted",
            ]
        ]
        return Output(
            result.table,
            metadata={
                "engine": result.engine,
                "replaceable": result.decision.replaceable,
                "reason": result.decision.reason,
                "score": result.decision.score,
                "ci_95": MetadataValue.json([result.decision.ci_low, result.decision.ci_high]),
                "promoted_version": result.promoted_version or 0,
                "variants": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f")),
            },
        )

    return evaluations
