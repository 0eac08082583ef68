"""The one slow test on a real model: the packaged SmolLM2-135M converts to a trainable checkpoint, learns from a
few LoRA steps, and its adapter reloads to the same outputs."""

import json

from peft import PeftModel

from finetune.adapters import train_task_adapter
from finetune.candidates import load_candidates
from finetune.generate import generate
from finetune.models import SOURCE_FILE, base_checkpoint, load_base
from finetune.prompts import adapter_examples, prompt_text
from finetune.train import TrainConfig
from pipeline.context import InputRule
from test_finetune import QUEUES, call


def test_smollm2_converts_once_learns_from_a_few_steps_and_its_adapter_reloads(tmp_path):
    smollm2 = load_candidates()[0]
    checkpoint = base_checkpoint(smollm2, tmp_path)
    assert json.loads((checkpoint / SOURCE_FILE).read_text())["gguf"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert base_checkpoint(smollm2, tmp_path) == checkpoint  # converted once, then reused

    _, tokenizer = load_base(checkpoint)
    examples = adapter_examples(tokenizer, [call(i, queue=QUEUES[i % 3]) for i in range(8)], InputRule(), 2048)
    manifest = train_task_adapter("task-001", smollm2.name, checkpoint, examples, InputRule(), tmp_path / "adapters",
                                  TrainConfig(min_steps=8, max_steps=8, batch_size=2))

    losses = manifest["loss_curve"]
    assert sum(losses[-2:]) / 2 < losses[0]
    prompts = [prompt_text(tokenizer, call(50, queue="billing"))]
    replies = [
        generate(PeftModel.from_pretrained(load_base(checkpoint)[0], manifest["path"]), tokenizer, prompts, max_new_tokens=24).texts[0]
        for _ in range(2)
    ]
    assert replies[0] == replies[1]
    assert json.loads(replies[0])["name"] == "route_ticket"  # eight steps taught it the tool-call form
