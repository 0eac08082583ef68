"""Generation engines and the export for serving, on the tiny model: CTranslate2 gives transformers' greedy replies,
converts a task's model once, and gives way to transformers where it cannot convert; an export is the promoted
adapter for its engine, with a vLLM entry and hashes that catch a changed file."""

import json
from datetime import datetime

import pytest
import torch
import yaml
from peft import PeftModel
from transformers import AutoTokenizer, StableLmConfig, StableLmForCausalLM

from finetune.adapters import record_promotion, train_task_adapter
from finetune.engines import SHARED_PREFIX_STEP, load_engine
from finetune.export import export_task, load_served
from finetune.generate import generate
from finetune.models import load_base, load_for_inference
from finetune.prompts import adapter_examples, prompt_text
from pipeline.context import InputRule
from pipeline.pruning import learn_pruning
from pipeline.settings import EngineConfig, TrainConfig
from test_finetune import QUEUES, call

EVALUATION = {"score": 0.95, "ci_low": 0.9, "ci_high": 1.0, "replaceable": True, "reason": "0.95 reaches the tool threshold 0.9"}


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, tmp_path_factory):
    """A registry with the tiny model's adapter for task-001, promoted, and prompts it reads."""
    root = tmp_path_factory.mktemp("adapters")
    _, tokenizer = load_base(tiny_checkpoint)
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(12)]
    rule = InputRule(learn_pruning(calls))
    train_task_adapter("task-001", "tiny", tiny_checkpoint, adapter_examples(tokenizer, calls, rule, 2048), rule, root,
                       TrainConfig(min_steps=4, max_steps=4, learning_rate=5e-3))
    record_promotion(root, "task-001", {"version": 1, "promoted": True, "at": datetime(2026, 11, 20).isoformat()})
    prompts = [prompt_text(tokenizer, rule.prepare(call(i, queue=q))) for i, q in enumerate(QUEUES * 2, start=50)]
    return root, prompts


def test_ctranslate2_gives_the_greedy_replies_of_transformers_with_the_adapter_merged(tiny_checkpoint, trained, tmp_path):
    root, prompts = trained
    adapter = root / "task-001" / "v1"
    reference = PeftModel.from_pretrained(load_base(tiny_checkpoint)[0], adapter).merge_and_unload()
    expected = generate(reference, load_base(tiny_checkpoint)[1], prompts, max_new_tokens=12)

    engine = load_engine(tiny_checkpoint, adapter, EngineConfig(engine="ctranslate2", compute_type="float32"), tmp_path)
    replies = engine.generate(prompts, max_new_tokens=12)

    assert engine.name == "ctranslate2"
    assert replies.texts == expected.texts and replies.new_tokens == expected.new_tokens
    again = load_engine(tiny_checkpoint, adapter, EngineConfig(engine="ctranslate2", compute_type="float32"), tmp_path)
    assert again.folder == engine.folder and len(list((tmp_path / "ctranslate2").iterdir())) == 1  # converted once
    int8 = load_engine(tiny_checkpoint, adapter, EngineConfig(engine="ctranslate2"), tmp_path)
    assert int8.folder != engine.folder and len(int8.generate(prompts, max_new_tokens=12).texts) == len(prompts)


def test_one_request_at_a_time_reads_the_shared_start_once_and_gives_the_same_replies(tiny_checkpoint, trained, tmp_path):
    root, prompts = trained
    policy = "".join(f"Rule {i}: answer in the queue's own words.\n" for i in range(20))  # an agent's long policy
    prompts = [policy + prompt for prompt in prompts]
    engine = load_engine(tiny_checkpoint, root / "task-001" / "v1", EngineConfig(engine="ctranslate2", compute_type="float32"), tmp_path)
    batched = engine.generate(prompts, max_new_tokens=12).texts

    fresh = load_engine(tiny_checkpoint, root / "task-001" / "v1", EngineConfig(engine="ctranslate2", compute_type="float32"), tmp_path)
    one_by_one, shared = [], []
    for prompt in prompts:
        one_by_one += fresh.generate([prompt], max_new_tokens=12).texts
        shared.append(fresh.shared_tokens)

    assert one_by_one == batched
    assert shared[0] == 0 and shared[1] >= SHARED_PREFIX_STEP  # the first prompt alone cannot tell what is shared
    assert all(n % SHARED_PREFIX_STEP == 0 and n < len(fresh.tokenizer(p).input_ids) for n, p in zip(shared, prompts))


def test_a_merged_adapter_projects_its_last_positions_as_one_matrix_product(tiny_checkpoint, trained):
    # a merged model's head needs no gradient, and torch multiplies an unfoldable slice by a copy of the whole head
    model = load_for_inference(tiny_checkpoint, trained[0] / "task-001" / "v1")
    seen = []
    model.get_output_embeddings().register_forward_pre_hook(lambda head, inputs: seen.append(inputs[0]))
    with torch.inference_mode():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]), logits_to_keep=1)

    assert not model.get_output_embeddings().weight.requires_grad
    assert seen[0].shape[1] == 1 and seen[0].stride() == torch.empty(seen[0].shape).stride()


def test_a_model_ctranslate2_cannot_convert_is_served_by_transformers(tiny_checkpoint, tmp_path, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    torch.manual_seed(0)
    StableLmForCausalLM(StableLmConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "stablelm")
    tokenizer.save_pretrained(tmp_path / "stablelm")

    engine = load_engine(tmp_path / "stablelm", None, EngineConfig(engine="ctranslate2"), tmp_path / "engines")

    assert engine.name == "transformers" and "CTranslate2 cannot convert it" in caplog.text
    assert len(engine.generate(["hello"], max_new_tokens=4).texts) == 1
    with pytest.raises(ValueError, match="expected one of ctranslate2, transformers"):
        load_engine(tmp_path / "stablelm", None, EngineConfig(engine="ctranslate"), tmp_path / "engines")


def test_the_export_is_the_promoted_adapter_for_its_engine_with_a_vllm_entry_and_hashes(tiny_checkpoint, trained, tmp_path):
    root, prompts = trained
    serving = tmp_path / "serving"

    manifest = export_task("task-001", "tiny", tiny_checkpoint, root, serving, EngineConfig(engine="ctranslate2"),
                           tmp_path / "engines", EVALUATION)

    folder = serving / "task-001"
    assert (manifest["version"], manifest["engine"], manifest["compute_type"], manifest["replaceable"]) == (1, "ctranslate2", "int8", True)
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert InputRule.from_dict(manifest["input"]) == InputRule.from_dict(json.loads((root / "task-001" / "v1" / "manifest.json").read_text())["input"])
    assert {"model/model.bin", "adapter/adapter_model.safetensors", "adapter/adapter_config.json", "vllm.yaml"} <= set(manifest["files"])

    vllm = yaml.safe_load((folder / "vllm.yaml").read_text())
    assert vllm["model"] == str(tiny_checkpoint) and vllm["enable-lora"] is True
    [module] = vllm["lora-modules"]
    name, path = module.split("=")
    assert name == "task-001" and (folder / "adapter") == type(folder)(path)
    assert json.loads((folder / "adapter" / "adapter_config.json").read_text())["r"] <= vllm["max-lora-rank"]

    served = load_served(folder)
    direct = load_engine(tiny_checkpoint, root / "task-001" / "v1", EngineConfig(engine="ctranslate2"), tmp_path / "engines")
    assert served.engine.generate(prompts, 12).texts == direct.generate(prompts, 12).texts
    assert served.rule == InputRule.from_dict(manifest["input"])

    again = export_task("task-001", "tiny", tiny_checkpoint, root, serving, EngineConfig(engine="ctranslate2"), tmp_path / "engines", EVALUATION)
    assert again["exported_at"] == manifest["exported_at"]  # the same adapter for the same engine: left as it was
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="adapter/adapter_config.json differ from what was exported"):
        load_served(folder)
    assert export_task("task-002", "tiny", tiny_checkpoint, root, serving, EngineConfig(), tmp_path / "engines", EVALUATION) is None
