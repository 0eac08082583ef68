"""The export of a task's promoted adapter for serving, after step 6: `SLM_HOME/serving/<task>/`.

What is written is what step 6 scored, on the same engine (`finetune.engines`), so the report's scores are those of
the served artifact:
- `model/`: the base model with the adapter merged in, converted for the engine (CTranslate2 int8, with its
  tokenizer and end-of-turn tokens); absent where the engine is transformers, which reads the base checkpoint and
  `adapter/` itself;
- `adapter/`: the peft adapter, for engines that apply it per request (vLLM on a GPU);
- `vllm.yaml`: the GPU deployment's entry, `vllm serve --config vllm.yaml`: the base model, and the adapter as a
  LoRA module named after the task, so a request whose `model` is the task id gets it;
- `manifest.json`: the task, the adapter version and its scores, the decision, the input rule every call must be
  read through (`input`, `InputRule.to_dict`), and the SHA-256 of every file above.

`load_served` reads such a folder back, checks every hash, and returns the engine and the input rule: what a
gateway needs to answer the task's calls.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from finetune.adapters import MANIFEST, promoted_version
from finetune.engines import ADAPTER_WEIGHTS, CTranslate2Engine, Engine, TransformersEngine, converted_model
from finetune.models import base_model_sha256, file_sha256
from pipeline.context import InputRule
from pipeline.settings import EngineConfig

ADAPTER_FILES = (ADAPTER_WEIGHTS, "adapter_config.json")
# vLLM's --max-lora-rank takes one of these; the entry asks for the smallest that holds the adapter's rank
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def export_task(
    task_id: str,
    candidate: str,
    checkpoint: Path,
    adapters_root: Path,
    serving_root: Path,
    config: EngineConfig,
    cache: Path,
    evaluation: dict,
) -> dict | None:
    """Write the task's promoted adapter for serving and return its manifest; None where no adapter is promoted.
    `evaluation` is the promoted adapter's row of `evaluations`. A task already exported from the same adapter for
    the same engine is left as it is."""
    version = promoted_version(adapters_root, task_id)
    if version is None:
        return None
    source = adapters_root / task_id / f"v{version}"
    trained = json.loads((source / MANIFEST).read_text())
    target = serving_root / task_id
    adapter_sha256 = file_sha256(source / ADAPTER_WEIGHTS)
    if (target / MANIFEST).exists():
        current = json.loads((target / MANIFEST).read_text())
        if (current["adapter_sha256"], current["engine"], current["compute_type"]) == (adapter_sha256, config.engine, config.compute_type):
            return current
    staging = target.with_name(task_id + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "adapter").mkdir(parents=True)
    for name in ADAPTER_FILES:
        shutil.copy2(source / name, staging / "adapter" / name)
    model = converted_model(checkpoint, source, config, cache)
    if model is not None:
        shutil.copytree(model, staging / "model")
    rank = json.loads((source / "adapter_config.json").read_text())["r"]
    (staging / "vllm.yaml").write_text(_vllm_entry(task_id, candidate, checkpoint, target / "adapter", rank))
    manifest = {
        "task_id": task_id,
        "version": version,
        "candidate": candidate,
        "engine": "ctranslate2" if model is not None else "transformers",
        "compute_type": config.compute_type if model is not None else "",
        "base_checkpoint": str(checkpoint),
        "base_sha256": base_model_sha256(checkpoint),
        "adapter_sha256": adapter_sha256,
        "data_sha256": trained["data_sha256"],
        "input": trained["input"],
        "input_rule": trained["input_rule"],
        "score": evaluation["score"],
        "ci_95": [evaluation["ci_low"], evaluation["ci_high"]],
        "replaceable": bool(evaluation["replaceable"]),
        "reason": evaluation["reason"],
        "files": {str(p.relative_to(staging)): file_sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()},
        "exported_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    retired = target.with_name(task_id + ".retired")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    staging.rename(target)  # a reader finds the old export or the new one whole, never half of each
    shutil.rmtree(retired, ignore_errors=True)
    return manifest


def _vllm_entry(task_id: str, candidate: str, checkpoint: Path, adapter: Path, rank: int) -> str:
    entry = {
        "model": str(checkpoint),
        "served-model-name": candidate,
        "enable-lora": True,
        "max-lora-rank": next(r for r in VLLM_LORA_RANKS if r >= rank),
        "lora-modules": [f"{task_id}={adapter}"],
    }
    return f"# the GPU deployment of {task_id}: vllm serve --config vllm.yaml; requests name the model {task_id}\n" + yaml.safe_dump(entry, sort_keys=False)


@dataclass(frozen=True)
class Served:
    engine: Engine
    rule: InputRule  # every call is read through it before it is rendered: rule.prepare(call)
    manifest: dict


def load_served(folder: Path, threads: int = 0) -> Served:
    """An exported task, its files checked against the manifest's hashes, ready to answer its calls."""
    manifest = json.loads((folder / MANIFEST).read_text())
    changed = [name for name, sha256 in manifest["files"].items() if file_sha256(folder / name) != sha256]
    if changed:
        raise ValueError(f"{folder}: {', '.join(changed)} differ from what was exported")
    if manifest["engine"] == "ctranslate2":
        engine = CTranslate2Engine(folder / "model", threads)
    else:
        engine = TransformersEngine.configured(Path(manifest["base_checkpoint"]), folder / "adapter", EngineConfig())
    return Served(engine, InputRule.from_dict(manifest["input"]), manifest)
