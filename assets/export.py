"""After step 6, export: a task's promoted adapter → `SLM_HOME/serving/<task>/`, the artifact the chosen engine
serves, its input rule, a vLLM entry for GPU deployments, and a manifest with the hash of every file."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    ResourceParam,
    asset,
)

from finetune.candidates import load_candidates
from pipeline.settings import Settings


def export_asset(tasks: PartitionsDefinition) -> AssetsDefinition:
    """The export, one run per task partition."""

    @asset(partitions_def=tasks, group_name="export")
    def served_adapter(
        context: AssetExecutionContext, evaluations: pd.DataFrame, settings: ResourceParam[Settings]
    ) -> MaterializeResult:
        """Write the promoted adapter for serving: the engine's model, the adapter, its input rule, a vLLM entry and
        a manifest of hashes."""
        # imported here, not at the top: the code location (each sensor tick, each run's start) loads without torch
        from finetune.export import export_task
        from finetune.models import base_checkpoint

        task_id = context.partition_key
        promoted = evaluations[evaluations["promoted"].astype(bool)]
        if promoted.empty:
            context.log.warning(f"{task_id}: no promoted adapter to export")
            return MaterializeResult(metadata={"skipped": "no promoted adapter"})
        row = promoted.iloc[0].to_dict()
        candidate = next(c for c in load_candidates(settings.candidates_file) if c.name == row["candidate"])
        manifest = export_task(
            task_id,
            candidate.name,
            base_checkpoint(candidate, settings.home),
            settings.adapters_dir,
            settings.serving_dir,
            settings.engine,
            settings.engines_dir,
            row,
        )
        folder = settings.serving_dir / task_id
        context.log.info(f"{task_id}: v{manifest['version']} exported for {manifest['engine']} to {folder}")
        return MaterializeResult(
            metadata={
                "version": manifest["version"],
                "engine": manifest["engine"],
                "replaceable": manifest["replaceable"],
                "score": manifest["score"],
                "input_rule": manifest["input_rule"],
                "megabytes": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1),
                "path": MetadataValue.path(str(folder)),
                "vllm": MetadataValue.path(str(folder / "vllm.yaml")),
            }
        )

    return served_adapter
