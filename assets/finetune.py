"""Step 5, fine-tune: the chosen SLM → a LoRA adapter for the task, registered as its next version in `adapters`."""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset
from dagster_duckdb import DuckDBResource

from finetune.adapters import registry, train_task_adapter
from finetune.models import base_checkpoint, load_tokenizer
from finetune.prompts import adapter_examples
from pipeline.context import InputRule
from pipeline.partitions import tasks as task_partitions
from pipeline.pruning import learn_pruning
from pipeline.resources import Conversion
from pipeline.selection import split_by_time
from pipeline.tasks import task_calls


@asset(partitions_def=task_partitions, metadata={"partition_expr": "task_id"}, group_name="finetune")
def adapters(
    context: AssetExecutionContext, slm_selection: pd.DataFrame, warehouse: DuckDBResource, conversion: Conversion
) -> Output[pd.DataFrame]:
    """Train a LoRA adapter of the chosen SLM on the task's older calls, static text pruned and context fitted; the
    newest calls stay held out for step 6."""
    task_id = context.partition_key
    chosen = slm_selection[slm_selection["chosen"]]
    if chosen.empty:
        reason = slm_selection["reason"].iloc[0] if len(slm_selection) else "no selection for the task"
        context.log.warning(f"{task_id}: skipped, {reason}")
        return Output(registry(conversion.adapters_root, task_id), metadata={"skipped": reason})
    candidate = next(c for c in conversion.candidates() if c.name == chosen["candidate"].iloc[0])
    checkpoint = base_checkpoint(candidate, conversion.home_path)
    with warehouse.get_connection() as connection:
        calls = task_calls(connection, task_id)
    selection, training = conversion.selection(), conversion.training()
    train, held_out = split_by_time(calls, selection.held_out_share)
    records = train.to_dict("records")
    rule = InputRule(learn_pruning(records, selection.prune_share), selection.context(int(chosen["context_window"].iloc[0])))
    examples = adapter_examples(load_tokenizer(checkpoint), records, rule, min(candidate.context_length, training.max_length))
    context.log.info(f"{task_id}: training {candidate.name} on {len(examples.examples)} calls ({len(held_out)} held out, "
                     f"{examples.unfit} too long); input: {rule.describe()}")
    manifest = train_task_adapter(
        task_id, candidate.name, checkpoint, examples, rule, conversion.adapters_root, training,
        on_log=lambda step, steps, loss: context.log.info(f"{task_id}: step {step}/{steps} loss {loss:.4f}"),
    )
    return Output(
        registry(conversion.adapters_root, task_id),
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
