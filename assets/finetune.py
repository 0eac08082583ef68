"""Step 5, fine-tune: the picked SLM → a LoRA adapter for the task, registered as its next version in `adapters`."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MetadataValue,
    Output,
    PartitionsDefinition,
    ResourceParam,
    asset,
)

from finetune.adapters import registry, train_task_adapter
from finetune.candidates import load_candidates
from pipeline.settings import Settings
from pipeline.warehouse import Warehouse


# On Dagster's Kubernetes executor (SLM_EXECUTOR=k8s) each step is a pod: training's asks for a GPU. Other
# executors ignore the tag.
ONE_GPU = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}}}}


def finetune_asset(tasks: PartitionsDefinition) -> AssetsDefinition:
    """Step 5, one run per task partition."""

    @asset(partitions_def=tasks, group_name="finetune", op_tags=ONE_GPU)
    def adapters(
        context: AssetExecutionContext,
        picks: pd.DataFrame,
        warehouse: ResourceParam[Warehouse],
        settings: ResourceParam[Settings],
    ) -> Output[pd.DataFrame]:
        """Train a LoRA adapter of the picked SLM on the task's older calls, static text pruned and context fitted;
        the newest calls stay held out for step 6."""
        # imported here, not at the top: the code location (each sensor tick, each run's start) loads without torch
        from finetune.models import base_checkpoint, load_tokenizer
        from finetune.prompts import task_training_set

        task_id = context.partition_key
        chosen = picks[picks["chosen"]]
        if chosen.empty:
            reason = picks["reason"].iloc[0] if len(picks) else "no pick for the task"
            context.log.warning(f"{task_id}: skipped, {reason}")
            return Output(registry(settings.adapters_dir, task_id), metadata={"skipped": reason})
        candidate = next(c for c in load_candidates(settings.candidates_file) if c.name == chosen["candidate"].iloc[0])
        checkpoint = base_checkpoint(candidate, settings.home)
        calls = warehouse.task_calls(task_id)
        rule, examples, held_out = task_training_set(
            load_tokenizer(checkpoint), calls, int(chosen["context_window"].iloc[0]), settings.pick,
            min(candidate.context_length, settings.training.max_length),
        )
        context.log.info(
            f"{task_id}: training {candidate.name} on {len(examples.examples)} calls ({held_out} held out, "
            f"{examples.unfit} too long); input: {rule.describe()}"
        )
        manifest = train_task_adapter(
            task_id,
            candidate.name,
            checkpoint,
            examples,
            rule,
            settings.adapters_dir,
            settings.training,
            on_log=lambda step, steps, loss: context.log.info(f"{task_id}: step {step}/{steps} loss {loss:.4f}"),
        )
        return Output(
            registry(settings.adapters_dir, task_id),
            metadata={
                "version": manifest["version"],
                "candidate": candidate.name,
                "train_calls": len(examples.examples),
                "calls_unfit": examples.unfit,
                "input_rule": rule.describe(),
                "prompt_tokens_full": manifest["prompt_tokens_full"],
                "prompt_tokens": manifest["prompt_tokens"],
                "steps": manifest["steps"],
                "stopped": manifest["stopped"],
                "final_loss": manifest["final_loss"],
                "seconds": manifest["seconds"],
                "tokens_per_second": manifest["tokens_per_second"],
                "path": MetadataValue.path(manifest["path"]),
                "loss_curve": MetadataValue.json(manifest["loss_curve"]),
            },
        )

    return adapters
