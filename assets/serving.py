"""Step 6 on live calls: the gateway's live pairs → `live_agreement`, and each task's mode → `serving_modes`, with
the files the gateway reads (`SLM_HOME/serving/modes.json`) and the vLLM configuration for GPU deployments."""

from datetime import UTC, datetime

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Config, MetadataValue, Output, ResourceParam, asset

from finetune.candidates import load_candidates
from pipeline.modes import TaskServing, plan_modes, task_kind, write_modes
from pipeline.pick import split_by_time
from pipeline.served import live_pairs
from pipeline.settings import Settings
from pipeline.vllm import write_vllm_configs
from pipeline.warehouse import Warehouse


@asset(group_name="evaluate")
def live_agreement(context: AssetExecutionContext, settings: ResourceParam[Settings]) -> Output[pd.DataFrame]:
    """Score every task's live pairs, its adapter and the LLM answering the same live call, with step 6's metrics."""
    # imported here, not at the top: the code location (each sensor tick, each run's start) loads without torch
    from finetune.live import live_agreement as score
    from finetune.models import encode

    pairs = live_pairs(settings.logs)
    table = score(pairs, encode, settings.serve.live_window)
    context.log.info(f"{len(pairs)} live pairs over {len(table)} adapters")
    shown = table[["task_id", "adapter_version", "kind", "pairs", "agreement", "ci_low", "ci_high", "fallbacks"]]
    return Output(table, metadata={"pairs": len(pairs), "agreement": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f"))})


class ModesConfig(Config):
    """Modes set by hand from the launchpad: task id → llm, shadow, canary:<share>, slm, or auto (back to the rule)."""

    modes: dict[str, str] = {}


@asset(deps=[AssetKey("tasks"), AssetKey("evaluations"), AssetKey("live_agreement")], group_name="evaluate")
def serving_modes(
    context: AssetExecutionContext, config: ModesConfig, warehouse: ResourceParam[Warehouse],
    settings: ResourceParam[Settings],
) -> Output[pd.DataFrame]:
    """Each task's mode: shadow once replaceable, slm once live agreement reaches the threshold, llm when it drops;
    written where the gateway reads it, with the vLLM configuration of the adapters it serves."""
    from finetune.evaluate import reply_budget
    from finetune.models import base_checkpoint, load_tokenizer

    serve = settings.serve
    tasks, evaluations, live = warehouse.read("tasks"), warehouse.read("evaluations"), warehouse.read("live_agreement")
    table = plan_modes(tasks, evaluations, live, warehouse.read("serving_modes"), settings.decision.thresholds,
                       serve.live_min_calls, config.modes, serve.modes, datetime.now(UTC).replace(tzinfo=None))
    candidates = {c.name: c for c in load_candidates(settings.candidates_file)}
    promoted = evaluations[evaluations["promoted"].astype(bool)].set_index("task_id")
    kinds = dict(zip(tasks["task_id"], tasks["reply_types"].map(task_kind)))
    served = []
    for row in table[table["adapter_version"] > 0].itertuples():
        candidate = candidates[promoted.loc[row.task_id, "candidate"]]
        checkpoint = base_checkpoint(candidate, settings.home)
        train, _ = split_by_time(warehouse.task_calls(row.task_id), settings.pick.held_out_share)
        budget = reply_budget(load_tokenizer(checkpoint), train.to_dict("records"), settings.pick.max_new_tokens)
        served.append(TaskServing(row.task_id, row.mode, row.adapter_version, candidate.name, str(checkpoint),
                                  candidate.context_length, kinds[row.task_id], budget))
    path = write_modes(settings.serving_dir, served)
    written = write_vllm_configs(settings.serving_dir, served, settings.adapters_dir)
    for row in table.itertuples():
        context.log.info(f"{row.task_id}: {row.mode} ({row.reason})")
    shown = table[["task_id", "mode", "adapter_version", "offline_score", "live_pairs", "live_agreement", "set_by", "reason"]]
    return Output(table, metadata={
        "modes": MetadataValue.json(table["mode"].value_counts().to_dict()),
        "tasks": MetadataValue.md(shown.to_markdown(index=False, floatfmt=".3f")),
        "modes_file": MetadataValue.path(str(path)),
        "vllm_configs": MetadataValue.json([str(p) for p in written]),
    })
