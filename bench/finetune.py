"""Step 5's training speed and memory on SmolLM2-135M on this CPU: ours beside a plain transformers Trainer and trl's
defaults, on the same examples, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/finetune.py [--steps 8] [--examples 64] [--task intent] [--home .slm]

Configurations, each trained in a fresh process so that its peak memory is its own:
- ours: `finetune.train.train_adapter` with its defaults except min_steps = max_steps = --steps (trl's SFTTrainer,
  LoRA r=8 on every linear layer, gradient checkpointing off, bf16 only on CPUs with bf16 instructions, loss on the
  reply only, the LM head run on the reply positions only);
- plain Trainer, the baseline: `transformers.Trainer` with TrainingArguments' defaults, full fine-tuning (no LoRA),
  causal-LM loss over the whole sequence (`DataCollatorForLanguageModeling(mlm=False)`), on each example tokenized
  as prompt + completion + end-of-turn, the text trl trains on;
- trl defaults: `trl.SFTTrainer` with SFTConfig's defaults (gradient checkpointing on, learning rate 2e-5 decaying
  linearly, no warm-up) and ours' LoRA config; bf16 as ours, since trl's bf16=True refuses to start on a CPU.
Every configuration also gets: batch 4, max_steps = --steps, a log every step, no checkpoint saving, no reporting.

Data: the first --examples calls of the seeded demo logs that name the task (intent: a support message in, its
intent label out, about 110-170 tokens), rendered by `finetune.prompts.training_example`.

Measures: s/step is the median interval between successive per-step logs (the only hook `train_adapter` offers; one
log per step), so the first step, which warms up, is left out. tokens/s is the non-padding tokens per step (the
attention-mask sum over the run, as trl's `num_tokens` counts them, divided by the steps) over s/step. Peak RSS is
the process's VmHWM, model loading included. The losses are not comparable across rows: the baseline's covers
the whole sequence, the others' only the reply, and the learning rates differ.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars from the trainers
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `finetune` package, not this file

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments,
)
from trl import SFTConfig, SFTTrainer  # noqa: E402

from finetune.candidates import load_candidates  # noqa: E402
from finetune.models import base_checkpoint, bf16_native, load_base  # noqa: E402
from finetune.prompts import training_example  # noqa: E402
from finetune.train import lora_config, train_adapter  # noqa: E402
from demo.logs import write_demo_logs  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.settings import Settings, TrainConfig  # noqa: E402

BATCH_SIZE = 4
BASELINE = "plain Trainer"


def task_examples(checkpoint: Path, task: str, count: int) -> list[dict[str, str]]:
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_logs(Path(tmp) / "logs", calls=8 * count)  # about one call in six is of any one short task
        calls = LogFolder.of(Settings(home=Path(f"{tmp}/home"), logs_dir=Path(f"{tmp}/logs"))).collect().calls.to_dict("records")
    examples = [training_example(tokenizer, call) for call in calls if call["workload"] == task][:count]
    if len(examples) < count:
        raise SystemExit(f"the demo logs hold only {len(examples)} {task} calls")
    return examples


class _StepTimes(TrainerCallback):
    def __init__(self, stamps: list[float]):
        self.stamps = stamps

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.stamps.append(time.perf_counter())


def _common_args(output_dir: str, steps: int) -> dict:
    return dict(output_dir=output_dir, max_steps=steps, per_device_train_batch_size=BATCH_SIZE, report_to="none",
                save_strategy="no", logging_steps=1)


def _lora(config: TrainConfig) -> str:
    return (
        f"LoRA r={config.lora_r} alpha={config.lora_alpha} dropout={config.lora_dropout:g} on all linear layers, "
        "loss on the reply"
    )


def _run(trainer: Trainer, what: str) -> dict:
    """Train; return the non-padding tokens read, the loss curve and the settings that tell the runs apart."""
    trainer.train()
    history, args = trainer.state.log_history, trainer.args
    trl_tokens = int(max((entry.get("num_tokens", 0) for entry in history), default=0))
    return {
        "tokens": trl_tokens or trainer.state.num_input_tokens_seen,  # Trainer counts them with "non_padding"
        "losses": [float(entry["loss"]) for entry in history if "loss" in entry],
        "settings": f"{what}; lr {args.learning_rate:g} {args.lr_scheduler_type.value}, "
        f"warm-up {args.warmup_steps} steps, gradient checkpointing {args.gradient_checkpointing}, bf16 {args.bf16}, "
        f"seed {args.seed}",
    }


def _ours(checkpoint: Path, examples: list[dict], steps: int, output_dir: str, stamps: list[float]) -> dict:
    config = TrainConfig(min_steps=steps, max_steps=steps)
    stamp = lambda *_: stamps.append(time.perf_counter())  # noqa: E731
    result = train_adapter(checkpoint, examples, Path(output_dir), config, on_log=stamp)
    settings = (  # as train_adapter sets them
        f"{_lora(config)}; LoRA+ ratio {config.loraplus_ratio:g}, lr {config.learning_rate:g} {config.schedule}, "
        f"warm-up {min(5, steps // 10)} steps, gradient checkpointing False, bf16 {bf16_native()}, "
        f"LM head on reply positions, seed {config.seed}"
    )
    return {"tokens": result.tokens, "losses": result.loss_curve, "settings": settings}


def _plain_trainer(checkpoint: Path, examples: list[dict], steps: int, output_dir: str, stamps: list[float]) -> dict:
    model, tokenizer = load_base(checkpoint)
    tokenizer.padding_side = "right"
    texts = [example["prompt"] + example["completion"] + tokenizer.eos_token for example in examples]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**_common_args(output_dir, steps), include_num_input_tokens_seen="non_padding"),
        train_dataset=Dataset.from_dict(dict(tokenizer(texts))),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=[_StepTimes(stamps)],
    )
    return _run(trainer, "full fine-tuning, loss on the whole sequence")


def _trl_defaults(checkpoint: Path, examples: list[dict], steps: int, output_dir: str, stamps: list[float]) -> dict:
    model, tokenizer = load_base(checkpoint)
    tokenizer.padding_side = "right"
    trainer = SFTTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(examples),
        peft_config=lora_config(TrainConfig()),
        # as ours: trl's bf16=True refuses a CPU without bf16, and transformers one with it unless told to use the CPU
        args=SFTConfig(**_common_args(output_dir, steps), bf16=bf16_native(), use_cpu=not torch.cuda.is_available()),
        callbacks=[_StepTimes(stamps)],
    )
    return _run(trainer, _lora(TrainConfig()))


CONFIGS = {"ours": _ours, BASELINE: _plain_trainer, "trl defaults": _trl_defaults}


def measure(name: str, checkpoint: Path, examples: list[dict], steps: int) -> dict:
    """One configuration's run, in this (fresh) process."""
    stamps: list[float] = []
    warnings.simplefilter("ignore")  # trainers' deprecation and pin_memory notices
    with tempfile.TemporaryDirectory() as output_dir, contextlib.redirect_stdout(io.StringIO()):  # per-step log lines
        run = CONFIGS[name](checkpoint, examples, steps, output_dir, stamps)
    intervals = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    return run | {
        "s_per_step": statistics.median(intervals),
        "tokens_per_step": run["tokens"] / steps,
        "peak_mb": _peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }


def _peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: a spawned process's starts at its parent's RSS (kept across exec)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="training steps per configuration (at least 3)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--task", default="intent", help="a demo task; ticket_routing's examples are about 2.3x longer")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SLM_HOME", ".slm")))
    args = parser.parse_args()
    if args.steps < 3:
        parser.error("--steps must be at least 3: the first step is left out of the timing")
    candidate = load_candidates()[0]
    checkpoint = base_checkpoint(candidate, args.home)
    examples = task_examples(checkpoint, args.task, args.examples)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    lengths = [len(tokenizer(e["prompt"] + e["completion"] + tokenizer.eos_token).input_ids) for e in examples]

    load_before = os.getloadavg()[0]
    results = {}
    for name in CONFIGS:
        started = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process:
            results[name] = process.submit(measure, name, checkpoint, examples, args.steps).result()
        print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)

    print(
        f"\n{candidate.name}, {args.examples} {args.task} examples of {min(lengths)}-{max(lengths)} tokens "
        f"(median {statistics.median(lengths):.0f}), batch {BATCH_SIZE}, {args.steps} steps; "
        f"s/step is the median of steps 2-{args.steps}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), torch {torch.__version__} "
        f"with {results['ours']['threads']} threads, bf16 instructions: {bf16_native()}; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    base = results[BASELINE]
    header = f"{'config':<15}{'s/step':>8}{'tokens/s':>10}{'peak RSS MB':>13}{'speed-up':>10}{'RSS ratio':>11}"
    print(f"\n{header}  loss first → final")
    for name, r in results.items():
        speed_up, rss_ratio = base["s_per_step"] / r["s_per_step"], r["peak_mb"] / base["peak_mb"]
        print(
            f"{name:<15}{r['s_per_step']:>8.2f}{r['tokens_per_step'] / r['s_per_step']:>10.0f}{r['peak_mb']:>13.0f}"
            f"{speed_up:>9.2f}x{rss_ratio:>10.2f}x  {r['losses'][0]:.3f} → {r['losses'][-1]:.3f}"
        )
    print(f"speed-up: {BASELINE}'s s/step over the row's (above 1: faster); RSS ratio: the row's peak over its\n")
    for name, r in results.items():
        print(f"{name:<15}{r['settings']}")


if __name__ == "__main__":
    main()
