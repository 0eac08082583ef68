"""The vLLM serving configuration for GPU deployments: per base model, one LoRA module per served task, named after
the task, so the gateway (`serve.vllm_base_url`) forwards each call's rendered prompt with `model` naming its task.

`vllm serve --config SLM_HOME/serving/vllm-<candidate>.yaml` reads it: its keys are vLLM's command-line options.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipeline.modes import LLM, TaskServing


def vllm_configs(tasks: list[TaskServing], adapters_root: Path) -> dict[str, dict]:
    """Candidate → its vLLM configuration, for the tasks whose adapter serves some calls (not `llm`)."""
    configs: dict[str, dict] = {}
    for task in sorted(tasks, key=lambda t: t.task_id):
        if task.mode == LLM or not task.adapter_version:
            continue
        folder = adapters_root / task.task_id / f"v{task.adapter_version}"
        rank = json.loads((folder / "adapter_config.json").read_text())["r"]
        config = configs.setdefault(task.candidate, {
            "model": task.checkpoint, "enable-lora": True, "lora-modules": [], "max-lora-rank": 0,
            "max-model-len": task.context_length, "served-model-name": task.candidate,
        })
        config["lora-modules"].append(f"{task.task_id}={folder}")
        config["max-lora-rank"] = max(config["max-lora-rank"], rank)
    for config in configs.values():
        config["max-loras"] = len(config["lora-modules"])
    return configs


def write_vllm_configs(folder: Path, tasks: list[TaskServing], adapters_root: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for candidate, config in vllm_configs(tasks, adapters_root).items():
        path = folder / f"vllm-{candidate}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        written.append(path)
    return written
