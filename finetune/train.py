"""Step 5's training: a LoRA adapter on every linear layer, trained with trl's SFTTrainer on prompt/completion pairs.

CPU defaults: gradient checkpointing off (trl turns it on; it made a step 1.5× slower here), bf16 only where the
CPU has bf16 instructions (elsewhere it is emulated and slower), the LM head run only where the loss is (see
`ReplyOnlyTrainer`), steps scaled to the data and capped. Training ends earlier once the task is learnt
(a low loss and every reply token right), once it has read `max_tokens`, or at `max_seconds`: a task of short calls
learns what it can from many steps, a task of long replies is bounded in time. The manifest says which bound
stopped it. With CUDA present the trainer uses the GPU, in bf16
when the card supports it.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import TrainerCallback, get_scheduler, set_seed
from trl import SFTConfig, SFTTrainer

from finetune.models import bf16_native, load_base
from pipeline.settings import TrainConfig


def lora_config(config: TrainConfig) -> LoraConfig:
    """A LoRA adapter on every linear layer."""
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def padding_share(lengths: list[int], batch_size: int, draws: int = 256, seed: int = 0) -> float:
    """The expected share of padding in a batch of `batch_size` examples drawn at random, each padded to the longest."""
    batches = np.random.default_rng(seed).choice(np.asarray(lengths), size=(draws, batch_size))
    return float(1 - batches.sum() / (batches.max(axis=1).sum() * batch_size))


def stop_reason(losses: list[float], accuracies: list[float], tokens: int, config: TrainConfig, seconds: float = 0.0) -> str:
    """Why training stops after the step that brought the loss and token-accuracy curves to `losses` and
    `accuracies`, the tokens read to `tokens` and the time spent to `seconds`, or "" to go on."""
    window = config.converged_steps
    recent, recent_accuracy = losses[-window:], accuracies[-window:]
    if config.stop_loss and len(recent) == window:
        mean = sum(recent) / window
        if mean < config.stop_loss and min(recent_accuracy) >= config.stop_accuracy:
            return (f"converged: mean loss {mean:.4f} over the last {window} steps, "
                    f"at least {min(recent_accuracy):.1%} of reply tokens predicted in each")
    if config.max_tokens and tokens >= config.max_tokens:
        return f"token budget: {tokens:,} of {config.max_tokens:,} tokens read"
    if config.max_seconds and seconds >= config.max_seconds:
        return f"time budget: {seconds:.0f} s of {config.max_seconds:g} s"
    return ""


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int  # steps taken
    stopped: str  # why training ended there
    loss_curve: list[float]
    seconds: float
    tokens: int  # tokens the model read, padding excluded
    peak_memory_mb: float
    hyperparameters: dict = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def train_adapter(
    checkpoint: Path,
    examples: list[dict[str, str]],
    output_dir: Path,
    config: TrainConfig = TrainConfig(),
    on_log: Callable[[int, int, float], None] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train on `examples` ({prompt, completion}) and save the adapter (safetensors) to `output_dir`; `callbacks` join
    the trainer's."""
    base, tokenizer = load_base(checkpoint)
    tokenizer.padding_side = "right"
    steps = config.steps(len(examples))
    warmup = min(5, steps // 10)
    lengths = [len(ids) for ids in tokenizer([e["prompt"] + e["completion"] for e in examples]).input_ids]
    one_at_a_time = float(np.median(lengths)) > config.unpadded_length
    padding_free = not one_at_a_time and padding_share(lengths, config.batch_size) > config.padding_free_share
    set_seed(config.seed)  # the LoRA matrices are initialised here, before the trainer seeds anything
    model = get_peft_model(base, lora_config(config))
    # LoRA+: the B matrices learn `loraplus_ratio` times faster than the A matrices (peft's optimizer for it)
    optimizer = create_loraplus_optimizer(model, torch.optim.AdamW, lr=config.learning_rate,
                                          loraplus_lr_ratio=max(config.loraplus_ratio, 1.0), weight_decay=0.0)
    trainer = ReplyOnlyTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(examples),
        optimizers=(optimizer, get_scheduler(config.schedule, optimizer, num_warmup_steps=warmup, num_training_steps=steps)),
        args=SFTConfig(
            output_dir=str(output_dir / "trainer"),
            max_steps=steps,
            per_device_train_batch_size=1 if one_at_a_time else config.batch_size,
            gradient_accumulation_steps=config.batch_size if one_at_a_time else 1,
            learning_rate=config.learning_rate,
            max_length=None if padding_free else config.max_length,  # adapter_examples already left longer calls out
            padding_free=padding_free,
            gradient_checkpointing=False,
            bf16=bf16_native(),
            use_cpu=not torch.cuda.is_available(),  # else transformers refuses bf16 on a CPU that has it
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=config.seed,
            data_seed=config.seed,
            dataloader_num_workers=0,
        ),
        callbacks=[stopping := _Stopping(steps, config, on_log), *callbacks],
    )
    _reset_peak_memory()
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    trainer.model.save_pretrained(output_dir)
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    return TrainResult(
        adapter_dir=output_dir,
        steps=trainer.state.global_step,
        stopped=stopping.reason or f"step limit: {steps} steps",
        loss_curve=[round(float(entry["loss"]), 4) for entry in history],
        seconds=seconds,
        tokens=int(max((entry.get("num_tokens", 0) for entry in history), default=0)),
        peak_memory_mb=_peak_memory_mb(),
        hyperparameters={**asdict(config), "step_limit": steps, "bf16": bf16_native(), "padding_free": padding_free,
                         "one_at_a_time": one_at_a_time},
    )


class ReplyOnlyTrainer(SFTTrainer):
    """trl's SFTTrainer with a loss that projects only the positions that carry a label through the LM head.

    trl's own loss does that on CUDA and XPU only: elsewhere it projects every position, to keep tile shapes fixed for
    compiling backends. Eager CPU compiles nothing, and there the prompt positions (most of an example) made the
    vocabulary projection most of a step: a ticket routing step took 2.7 s instead of 1.2 s. The loss is trl's (a test
    checks), and so are the `mean_token_accuracy` and `num_tokens` that the stopping rule reads from the logs; in bf16
    they differ from trl's by its LM head's rounding, since this one projects in fp32.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._accuracies: list[float] = []  # of the training batches since the last log
        self._tokens_read = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # the caller wants the logits of every position: only trl's loss builds them
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        causal_lm = model.get_base_model()
        # accelerate applies mixed precision around the model's own forward only, which this loss goes around.
        # Padded batches carry an attention mask; padding-free ones position ids and sequence bounds instead, which
        # transformers turns into a mask that keeps the packed examples apart only where there is no cache.
        with self.accelerator.autocast():
            decoded = causal_lm.get_decoder()(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
        labels = inputs["labels"][:, 1:]
        reply = labels != -100  # in a padding-free batch, each sequence's first label is -100 too
        hidden, targets = decoded.last_hidden_state[:, :-1][reply], labels[reply]
        # fp32 logits (the weights are fp32): the softmax over the vocabulary is where bf16 rounds most, and only the
        # reply rows pay for it
        with torch.autocast(hidden.device.type, enabled=False):
            logits = causal_lm.get_output_embeddings()(hidden.float())
        # as trl normalises: by the labelled positions of all the batches a step accumulates, where Trainer counts them
        count = targets.numel() if num_items_in_batch is None else num_items_in_batch
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)
        if model.training:
            self._accuracies.append((logits.argmax(-1) == targets).float().mean().item() if targets.numel() else 0.0)
            mask = inputs.get("attention_mask")
            self._tokens_read += int(mask.sum()) if mask is not None else inputs["position_ids"].size(1)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._accuracies:  # a training log: as trl logs them, the mean over its batches and the running total
            logs["mean_token_accuracy"] = sum(self._accuracies) / len(self._accuracies)
            logs["num_tokens"] = self._tokens_read
            self._accuracies.clear()
        super().log(logs, start_time)


def _reset_peak_memory() -> None:
    """So the peak is this training's, not an earlier one's in the same process (or the parent's, in a fork)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    elif Path("/proc/self/clear_refs").exists():
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets the process's peak resident set (VmHWM)


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status")
    if status.exists():
        peak_kib = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(peak_kib) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # macOS reports bytes


class _Stopping(TrainerCallback):
    """Reports each step's loss and ends training early once `stop_reason` gives one."""

    def __init__(self, steps: int, config: TrainConfig, on_log: Callable[[int, int, float], None] | None):
        self.steps, self.config, self.report = steps, config, on_log
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.reason = ""
        self.started = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        self.losses.append(float(logs["loss"]))
        self.accuracies.append(float(logs.get("mean_token_accuracy", 0.0)))
        if self.report:
            self.report(state.global_step, self.steps, self.losses[-1])
        self.reason = stop_reason(self.losses, self.accuracies, int(logs.get("num_tokens", 0)), self.config,
                                  time.perf_counter() - self.started)
        if self.reason:  # never cleared: the trainer sets it at the step limit too
            control.should_training_stop = True
