"""Step 5's registry of trained adapters: `SLM_HOME/adapters/<task>/v<N>/`, one folder per training run.

Each folder holds the adapter (safetensors), its peft config and `manifest.json`: the base model and its file hash,
the input rule (pruning and context window) every call must be read through, a hash of the exact training data, the hyperparameters, the loss curve and the duration. The folders are the
registry; the `adapters` table is read from them, so it can always be rebuilt. `promotions.jsonl` beside them is
step 6's history of which version serves the task.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.context import InputRule
from pipeline.settings import TrainConfig
from pipeline.warehouse import ADAPTERS, frame

if TYPE_CHECKING:
    from finetune.prompts import Examples
    from finetune.train import TrainResult

MANIFEST = "manifest.json"
PROMOTIONS = "promotions.jsonl"  # per task, beside its versions
STAGING = ".training-"  # a training run's own folder until its adapter is registered


def train_task_adapter(
    task_id: str,
    candidate: str,
    checkpoint: Path,
    examples: Examples,
    rule: InputRule,
    root: Path,
    config: TrainConfig = TrainConfig(),
    on_log: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Train the task's next adapter version on `examples`, made with `rule`, and register both; returns its
    manifest."""
    # the registry is read where no model is loaded (the sensors, the report): only training needs torch
    from finetune.train import train_adapter

    (root / task_id).mkdir(parents=True, exist_ok=True)
    # a folder of this run's own: two runs of the task never write the same path, and one killed mid-way leaves
    # only this hidden folder, never a version (delete `.training-*` folders while no training runs)
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=root / task_id))
    staging.chmod(0o755)  # mkdtemp's is owner-only; a version is read by whoever serves it
    try:
        result = train_adapter(checkpoint, examples.examples, staging, config, on_log)
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        return _register(staging, root / task_id, _manifest(task_id, candidate, checkpoint, examples, rule, result))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _manifest(task_id: str, candidate: str, checkpoint: Path, examples: Examples, rule: InputRule,
              result: TrainResult) -> dict:
    from finetune.models import base_model_sha256

    return {
        "task_id": task_id,
        "candidate": candidate,
        "base_checkpoint": str(checkpoint),
        "base_sha256": base_model_sha256(checkpoint),
        "data_sha256": data_sha256(examples.examples),
        "train_calls": len(examples.examples),
        "calls_unfit": examples.unfit,
        "input": rule.to_dict(),
        "input_rule": rule.describe(),
        "prompt_tokens_full": round(float(np.mean(examples.tokens_full)), 1) if examples.tokens else 0.0,
        "prompt_tokens": round(float(np.mean(examples.tokens)), 1) if examples.tokens else 0.0,
        "steps": result.steps,
        "stopped": result.stopped,
        "final_loss": result.loss_curve[-1] if result.loss_curve else float("nan"),
        "loss_curve": result.loss_curve,
        "seconds": round(result.seconds, 2),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "hyperparameters": result.hyperparameters,
        "trained_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
    }


def _register(staging: Path, task_folder: Path, manifest: dict) -> dict:
    """Move the trained adapter in as the task's next version. The rename is the allocation: it fails where
    another run took that number first, and then the next number is tried, so versions are never shared or
    skipped, and a version appears whole or not at all."""
    while True:
        version = max((int(p.name[1:]) for p in task_folder.glob("v*") if p.name[1:].isdigit()), default=0) + 1
        folder = task_folder / f"v{version}"
        numbered = {"task_id": manifest["task_id"], "version": version, **manifest, "path": str(folder)}
        (staging / MANIFEST).write_text(json.dumps(numbered, indent=2))
        try:
            staging.rename(folder)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            continue
        return numbered


def versions(root: Path, task_id: str) -> list[int]:
    return sorted(int(p.parent.name[1:]) for p in (root / task_id).glob(f"v*/{MANIFEST}"))


def registry(root: Path, task_id: str) -> pd.DataFrame:
    """Every registered version of the task's adapter, oldest first."""
    rows = []
    for version in versions(root, task_id):
        manifest = json.loads((root / task_id / f"v{version}" / MANIFEST).read_text())
        manifest.setdefault("stopped", f"step limit: {manifest['steps']} steps")  # versions before early stopping
        rows.append({
            **{k: manifest[k] for k in ADAPTERS if k not in ("loss_curve", "hyperparameters", "trained_at")},
            "loss_curve": json.dumps(manifest["loss_curve"]),
            "hyperparameters": json.dumps(manifest["hyperparameters"]),
            "trained_at": pd.Timestamp(manifest["trained_at"]),
        })
    return frame("adapters", rows)


def trained_from(root: Path, task_id: str, version: int) -> tuple[str, Path]:
    """The candidate the version was trained from, and its base checkpoint."""
    manifest = json.loads((root / task_id / f"v{version}" / MANIFEST).read_text())
    return manifest["candidate"], Path(manifest["base_checkpoint"])


def input_rule(root: Path, task_id: str, version: int) -> InputRule:
    """The rule the version was trained with, to read every call the same way wherever it runs."""
    manifest = json.loads((root / task_id / f"v{version}" / MANIFEST).read_text())
    return InputRule.from_dict(manifest["input"])


def data_sha256(examples: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def promotions(root: Path, task_id: str) -> list[dict]:
    """The task's promotion history, oldest first: every challenger judged, promoted or not."""
    path = root / task_id / PROMOTIONS
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def promoted_version(root: Path, task_id: str) -> int | None:
    promoted = [entry["version"] for entry in promotions(root, task_id) if entry["promoted"]]
    return promoted[-1] if promoted else None


def record_promotion(root: Path, task_id: str, entry: dict) -> None:
    with (root / task_id / PROMOTIONS).open("a") as history:
        history.write(json.dumps(entry) + "\n")
