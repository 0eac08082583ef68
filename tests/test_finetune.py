"""Steps 4–6 around the models: candidates, the prompt convention, the time split, the choice, training, the
adapter registry and cross-validation, on a tiny model built from a config so they run in seconds."""

import json
import random
import re
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import torch
from peft import PeftModel
from transformers import TrainerCallback
from trl import SFTTrainer

from finetune.adapters import input_rule, registry, train_task_adapter
from finetune.evaluate import cross_validate, evaluate_task
from finetune.candidates import Candidate, load_candidates
from finetune.constrained import reply_schema
from finetune.engines import TransformersEngine
from finetune.generate import SharedStart, batches, generate
from finetune.models import load_base, load_tokenizer
from finetune.pick import pick_candidate
from finetune.prompts import adapter_examples, chat_messages, prompt_text, renumbered, target_text
from pipeline.context import InputRule
from pipeline.pruning import learn_pruning
import finetune.train
from finetune.train import padding_share, stop_reason, train_adapter
from pipeline.pick import Profile, choose, could_win, split_by_time, unfit_reason
from pipeline.settings import DecisionConfig, PickConfig, TrainConfig
from pipeline.warehouse import SCHEMAS

ROUTE_TOOL = {"type": "function", "function": {"name": "route_ticket", "description": "Send a ticket to a queue.",
                                               "parameters": {"type": "object", "properties": {"queue": {"type": "string"}}}}}
QUEUES = ["billing", "shipping", "returns"]


def call(i: int, *, queue: str | None = None, text: str | None = None, day: int = 0) -> dict:
    tool_calls = [{"id": "c", "name": "route_ticket", "arguments": {"queue": queue}}] if queue else []
    return {
        "call_id": f"c{i:03d}", "called_at": datetime(2026, 11, 2) + timedelta(days=day, minutes=i),
        "messages": json.dumps([{"role": "system", "content": "Route the ticket."}, {"role": "user", "content": f"ticket {i} about {queue or text}"}]),
        "tools": json.dumps([ROUTE_TOOL]) if queue else "[]",
        "response_text": text, "response_tool_calls": json.dumps(tool_calls),
    }


def tiny_candidate(checkpoint, **changes) -> Candidate:
    fields = dict(name="tiny", source={"folder": str(checkpoint)}, architecture="llama", parameters=100_000,
                  context_length=2048, license="Apache-2.0", chat_template=True, tool_calling=True, serving_usd_per_1m_tokens=0.01)
    return Candidate(**{**fields, **changes})


def test_the_registry_ships_smollm2_and_gemma_and_a_user_file_adds_or_replaces(tmp_path):
    assert [c.name for c in load_candidates()] == ["smollm2-135m-instruct", "gemma-3-270m"]
    extra = tmp_path / "more.yaml"
    extra.write_text(
        "- {name: gemma-3-270m, source: {folder: /models/gemma}, architecture: gemma3, parameters: 1, context_length: 1024,"
        " license: x, chat_template: false, template: gemma, tool_calling: false, serving_usd_per_1m_tokens: 0.1}\n"
        "- {name: mine, source: {hub: me/mine}, architecture: llama, parameters: 2, context_length: 4096,"
        " license: MIT, chat_template: true, tool_calling: true, serving_usd_per_1m_tokens: 0.2}\n"
    )
    candidates = {c.name: c for c in load_candidates(extra)}
    assert list(candidates) == ["smollm2-135m-instruct", "gemma-3-270m", "mine"]
    assert candidates["gemma-3-270m"].source == {"folder": "/models/gemma"}


def test_a_model_without_a_chat_template_must_name_one_the_project_supplies(tmp_path):
    extra = tmp_path / "more.yaml"
    extra.write_text("- {name: base, source: {folder: x}, architecture: llama, parameters: 1, context_length: 1,"
                     " license: x, chat_template: false, tool_calling: false, serving_usd_per_1m_tokens: 0}\n")
    with pytest.raises(ValueError, match="no chat template"):
        load_candidates(extra)


def test_tools_go_in_the_system_turn_and_tool_calls_are_json_in_the_assistant_turn():
    history = call(1, queue="billing")
    history["messages"] = json.dumps([
        {"role": "system", "content": "Route the ticket."},
        {"role": "user", "content": "where is my parcel"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "route_ticket", "arguments": "{\"queue\": \"shipping\"}"}}]},
        {"role": "tool", "content": "routed"},
    ])
    system, user, assistant, tool = chat_messages(history)
    assert system["role"] == "system" and system["content"].startswith("Route the ticket.\n\nTools:\n{\"name\":\"route_ticket\"")
    assert (user["role"], assistant["role"], tool["role"]) == ("user", "assistant", "tool")
    assert json.loads(assistant["content"]) == {"name": "route_ticket", "arguments": {"queue": "shipping"}}
    assert json.loads(target_text(history)) == {"name": "route_ticket", "arguments": {"queue": "billing"}}
    assert target_text(call(2, text="Hello there")) == "Hello there"


def test_few_shot_examples_sit_between_the_system_turn_and_the_conversation():
    turns = chat_messages(call(1, queue="billing"), examples=[call(2, queue="returns")])
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[1]["content"] == "ticket 2 about returns" and "returns" in turns[2]["content"]


def test_the_newest_calls_of_each_reply_type_are_held_out():
    calls = pd.DataFrame([call(i, queue="billing", day=i) for i in range(10)] + [call(10 + i, text="hi", day=i) for i in range(5)])
    train, held_out = split_by_time(calls.sample(frac=1, random_state=0), held_out_share=0.2)
    assert sorted(held_out["call_id"]) == ["c008", "c009", "c014"]
    assert train["called_at"].is_monotonic_increasing and len(train) == 12


def test_a_candidate_that_cannot_fit_the_task_says_why():
    task = Profile(input_p50=900, input_p95=1800, output_p50=20, output_p95=300, longest=2500, reply_types={"tool:x": 3}, tools=["x"])
    assert "context of 2048" in unfit_reason(task, context_length=2048, tool_calling=True)
    assert "tool calling" in unfit_reason(task, context_length=8192, tool_calling=False)
    assert unfit_reason(task, context_length=8192, tool_calling=True) == ""


def test_choice_is_best_score_per_cost_then_the_smaller_model_and_a_pin_wins():
    scores = pd.DataFrame({"candidate": ["small", "big"], "score": [0.5, 0.8], "cost": [0.02, 0.04], "parameters": [1, 2],
                           "instruction_tuned": [True, True]})
    assert choose(scores)[0] == "small"  # 25 per dollar against 20
    assert choose(scores, policy="best_score")[0] == "big"
    assert choose(scores.assign(score=[0.0, 0.0]))[0] == "small"
    assert choose(scores, pinned="big") == ("big", "pinned by configuration")
    with pytest.raises(ValueError, match="policy"):
        choose(scores, policy="cheapest")


def test_a_base_model_is_chosen_over_an_instruction_tuned_one_only_on_evidence_beyond_chance():
    scores = pd.DataFrame({"candidate": ["instruct", "base"], "score": [0.25, 0.5], "cost": [0.02, 0.02],
                           "parameters": [1, 2], "instruction_tuned": [True, False]})
    # four calls, the base model ahead on one: ranked first, not chosen
    chosen, reason = choose(scores, per_call={"instruct": [0.0, 0.0, 0.5, 0.5], "base": [1.0, 0.0, 0.5, 0.5]})
    assert chosen == "instruct" and "within chance" in reason
    # ahead on every one of six calls: chosen
    chosen, reason = choose(scores, per_call={"instruct": [0.2] * 6, "base": [0.4, 0.5, 0.6, 0.4, 0.5, 0.6]})
    assert chosen == "base" and "beyond chance" in reason
    assert choose(scores)[0] == "base"  # without per-call scores there is nothing to weigh


def test_a_candidate_that_could_not_win_with_a_perfect_score_is_not_worth_scoring():
    # the small one scored 0.5 at $0.02: 25 per dollar, all that a perfect score at $0.04 would reach
    assert not could_win(cost=0.04, parameters=2, best_value=0.5 / 0.02, best_parameters=1)
    assert could_win(cost=0.04, parameters=2, best_value=0.4 / 0.02, best_parameters=1)
    assert not could_win(cost=0.04, parameters=2, best_value=1.0, best_parameters=1, policy="best_score")
    assert could_win(cost=0.04, parameters=1, best_value=1.0, best_parameters=2, policy="best_score")


def test_generation_batches_prompts_of_like_length_within_a_token_bound():
    assert batches([50, 10, 30, 20], max_new_tokens=10, batch_size=2, batch_tokens=1000) == [[1, 3], [2, 0]]
    assert batches([10, 10, 10], max_new_tokens=0, batch_size=8, batch_tokens=25) == [[0, 1], [2]]
    assert batches([10, 500], max_new_tokens=0, batch_size=8, batch_tokens=100) == [[0], [1]]  # too long: alone


def tiny_gemma3(tokenizer):
    """Gemma-3's layout, randomly initialized, its sliding window shorter than every prompt of the tests."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    return Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, sliding_window=8, layer_types=["sliding_attention", "full_attention"],
        pad_token_id=tokenizer.pad_token_id)).eval()


@pytest.mark.parametrize("layout", ["llama", "gemma3"])
def test_a_padded_batch_whose_prompts_are_read_alone_replies_as_each_prompt_answered_alone(tiny_checkpoint, layout):
    model, tokenizer = load_base(tiny_checkpoint)
    model = tiny_gemma3(tokenizer) if layout == "gemma3" else model
    prompts = [prompt_text(tokenizer, call(i, queue=QUEUES[i % 3])).replace("about", "about" + " more" * (5 * i)) for i in range(4)]
    alone = [generate(model, tokenizer, [p], max_new_tokens=12).texts[0] for p in prompts]
    rows = []
    model.register_forward_hook(lambda module, args, kwargs, output: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True)

    together = generate(model, tokenizer, prompts, max_new_tokens=12).texts
    read, rows[:] = rows[:], []
    padded = generate(model, tokenizer, prompts, max_new_tokens=12, read_alone=False).texts
    shared = generate(model, tokenizer, prompts, max_new_tokens=12, shared=SharedStart()).texts

    assert together == alone == padded == shared
    assert read[:4] == [1] * 4 and rows[0] == 4  # each prompt read on its own, then decoded as a batch


PRIORITY_TOOL = {"type": "function", "function": {"name": "route_ticket", "parameters": {
    "type": "object", "properties": {"queue": {"enum": QUEUES}, "priority": {"enum": ["low", "high"]}},
    "required": ["queue", "priority"], "additionalProperties": False}}}


def test_a_structured_reply_answered_alone_steps_the_model_only_where_the_schema_leaves_a_choice(tiny_checkpoint):
    model, tokenizer = load_base(tiny_checkpoint)
    calls = [{**call(i, queue="billing"), "tools": json.dumps([PRIORITY_TOOL])} for i in range(4)]
    prompts, schemas = [prompt_text(tokenizer, c) for c in calls], [reply_schema(c, "tool") for c in calls]
    steps = []
    model.register_forward_hook(lambda module, args, kwargs, output: steps.append(kwargs["input_ids"].shape[1]), with_kwargs=True)

    token_by_token = generate(model, tokenizer, prompts, 40, schemas=schemas).texts  # a batch: masked, a token a step
    steps.clear()
    forced = [generate(model, tokenizer, [p], 40, schemas=[s], forced_ahead=True).texts[0] for p, s in zip(prompts, schemas)]

    assert forced == token_by_token
    assert all(json.loads(reply)["name"] == "route_ticket" for reply in forced)
    replies = sum(len(tokenizer(r, add_special_tokens=False).input_ids) for r in forced)
    assert len(steps) - len(prompts) < replies / 2  # model steps after each prompt's reading: under half the tokens


def test_the_start_the_prompts_share_is_read_once_and_each_reply_is_that_of_its_prompt_read_whole(tiny_checkpoint):
    model, tokenizer = load_base(tiny_checkpoint)
    policy = "".join(f"Rule {i}: route by the customer's own words.\n" for i in range(10))  # an agent's instructions
    calls = [{**call(i, queue=QUEUES[i % 3]), "tools": json.dumps([PRIORITY_TOOL]), "messages": json.dumps(
        [{"role": "system", "content": policy}, *json.loads(call(i, queue=QUEUES[i % 3])["messages"])])} for i in range(5)]
    prompts, schemas = [prompt_text(tokenizer, c) for c in calls], [reply_schema(c, "tool") for c in calls]
    ids = tokenizer(prompts, add_special_tokens=False).input_ids
    common = min(next(i for i, tokens in enumerate(zip(*ids)) if len(set(tokens)) > 1), *(len(i) - 1 for i in ids))
    read = []
    model.register_forward_hook(lambda module, args, kwargs, output: read.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    whole = [generate(model, tokenizer, [p], 40, schemas=[s], forced_ahead=True).texts[0] for p, s in zip(prompts, schemas)]
    tokens_whole, read[:] = sum(read), []
    texts_whole = [generate(model, tokenizer, [p], 12, prompt_lookup=4).texts[0] for p in prompts]
    batch_whole = generate(model, tokenizer, prompts, 12).texts

    shared, read[:] = SharedStart(), []
    one_by_one = [generate(model, tokenizer, [p], 40, schemas=[s], forced_ahead=True, shared=shared).texts[0]
                  for p, s in zip(prompts, schemas)]
    tokens_shared = sum(read)
    texts, texts_shared = SharedStart(), []
    texts_shared = [generate(model, tokenizer, [p], 12, prompt_lookup=4, shared=texts).texts[0] for p in prompts]

    assert one_by_one == whole and texts_shared == texts_whole
    assert generate(model, tokenizer, prompts, 12, shared=SharedStart()).texts == batch_whole
    assert common > 100 and tokens_shared <= tokens_whole - (len(prompts) - 2) * common  # the first two read it all


def test_training_steps_follow_the_data_within_bounds():
    config = TrainConfig(batch_size=4, epochs=2, min_steps=20, max_steps=60)
    assert (config.steps(10), config.steps(100), config.steps(1000)) == (20, 50, 60)


def test_training_stops_once_the_loss_has_converged_or_a_token_or_time_budget_is_spent():
    config = TrainConfig(stop_loss=0.02, stop_accuracy=1.0, max_tokens=10_000, max_seconds=300)
    right = [1.0] * 9
    assert stop_reason([2.0, 0.5] + [0.01] * 7, right, tokens=500, config=config) == ""  # 0.07125 over the last eight
    assert stop_reason([2.0] + [0.01] * 8, right, 500, config).startswith("converged: mean loss 0.0100 over the last 8 steps")
    assert stop_reason([0.01] * 7, right, 500, config) == ""  # too few steps to tell
    assert stop_reason([2.0] + [0.01] * 8, [1.0] * 8 + [0.99], 500, config) == ""  # a deciding token still wrong
    assert stop_reason([2.0], [0.5], 10_000, config) == "token budget: 10,000 of 10,000 tokens read"
    assert stop_reason([2.0], [0.5], 500, config, seconds=301) == "time budget: 301 s of 300 s"
    assert stop_reason([0.0] * 8, right, 10**9, TrainConfig(stop_loss=0, max_tokens=0, max_seconds=0), seconds=10**6) == ""


def test_padding_is_expected_where_example_lengths_differ():
    assert padding_share([100] * 50, batch_size=4) == 0.0
    assert padding_share([50] * 45 + [500] * 5, batch_size=4) > 0.5  # one long example pads three short ones


def test_packed_batches_train_as_padded_ones_do(tiny_checkpoint, tmp_path):
    _, tokenizer = load_base(tiny_checkpoint)
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(8)]
    calls[0]["messages"] = calls[0]["messages"].replace("ticket 0", "ticket 0" + " and more" * 40)  # lengths that pad
    examples = adapter_examples(tokenizer, calls, InputRule(), 2048).examples
    config = TrainConfig(min_steps=2, max_steps=2)

    padded = train_adapter(tiny_checkpoint, examples, tmp_path / "padded", replace(config, padding_free_share=1.0))
    packed = train_adapter(tiny_checkpoint, examples, tmp_path / "packed", replace(config, padding_free_share=0.0))

    assert (padded.hyperparameters["padding_free"], packed.hyperparameters["padding_free"]) == (False, True)
    assert packed.tokens == padded.tokens  # the same tokens read, none of them padding
    assert packed.loss_curve == pytest.approx(padded.loss_curve, rel=0.02)  # no example attends to another


class GradientNorms(TrainerCallback):
    def __init__(self):
        self.norms = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "grad_norm" in logs:
            self.norms.append(float(logs["grad_norm"]))


def test_long_examples_train_one_at_a_time_with_the_same_updates_as_a_padded_batch(tiny_checkpoint, tmp_path):
    _, tokenizer = load_base(tiny_checkpoint)
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(8)]
    for c in calls[::2]:
        c["messages"] = c["messages"].replace("about", "about" + " and more" * 60)  # lengths that pad
    examples = adapter_examples(tokenizer, calls, InputRule(), 2048).examples
    config = TrainConfig(min_steps=2, max_steps=2, padding_free_share=1.0)

    padded = train_adapter(tiny_checkpoint, examples, tmp_path / "padded", replace(config, unpadded_length=10_000),
                           callbacks=[padded_norms := GradientNorms()])
    alone = train_adapter(tiny_checkpoint, examples, tmp_path / "alone", replace(config, unpadded_length=10),
                          callbacks=[alone_norms := GradientNorms()])

    assert (padded.hyperparameters["one_at_a_time"], alone.hyperparameters["one_at_a_time"]) == (False, True)
    assert alone.steps == padded.steps == 2 and alone.tokens == padded.tokens
    assert alone.loss_curve == pytest.approx(padded.loss_curve, rel=0.02)
    # Adam hides a gradient scaled by the accumulation count; its norm does not
    assert alone_norms.norms == pytest.approx(padded_norms.norms, rel=0.02)


class LMHeadRows(TrainerCallback):
    """Counts the rows the LM head projects during training, beside the positions and reply positions of the data."""

    def __init__(self):
        self.rows = 0

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        labels = train_dataloader.dataset["labels"]
        self.positions = sum(len(row) - 1 for row in labels)  # each but the last predicts the next token
        self.replies = sum(label != -100 for row in labels for label in row[1:])
        model.get_base_model().get_output_embeddings().register_forward_hook(self.count)

    def count(self, module, args, output):
        self.rows += output.shape[:-1].numel()


@pytest.mark.parametrize("padding_free_share", [1.0, 0.0], ids=["padded", "packed"])
def test_the_lm_head_sees_only_reply_positions_and_the_loss_is_trls(tiny_checkpoint, tmp_path, monkeypatch, padding_free_share):
    _, tokenizer = load_base(tiny_checkpoint)
    examples = adapter_examples(tokenizer, [call(i, queue=QUEUES[i % 3]) for i in range(8)], InputRule(), 2048).examples
    config = TrainConfig(min_steps=2, max_steps=2, padding_free_share=padding_free_share)  # 2 batches: each example once

    reply_only = train_adapter(tiny_checkpoint, examples, tmp_path / "reply_only", config, callbacks=[lm_head := LMHeadRows()])
    monkeypatch.setattr(finetune.train, "ReplyOnlyTrainer", SFTTrainer)  # trl's own loss and token count
    trls = train_adapter(tiny_checkpoint, examples, tmp_path / "trl", config)

    assert lm_head.rows == lm_head.replies < lm_head.positions / 3
    assert reply_only.loss_curve == pytest.approx(trls.loss_curve, rel=0.01)
    assert reply_only.tokens == trls.tokens


def test_an_adapter_stops_early_and_says_why(tiny_checkpoint, tmp_path):
    _, tokenizer = load_base(tiny_checkpoint)
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(12)]
    examples = adapter_examples(tokenizer, calls, InputRule(), 2048)

    converging = TrainConfig(min_steps=12, max_steps=12, stop_loss=1e6, stop_accuracy=0)
    converged = train_task_adapter("task-001", "tiny", tiny_checkpoint, examples, InputRule(), tmp_path, converging)
    budget = train_task_adapter("task-001", "tiny", tiny_checkpoint, examples, InputRule(), tmp_path,
                                TrainConfig(min_steps=12, max_steps=12, max_tokens=1))
    limit = train_task_adapter("task-001", "tiny", tiny_checkpoint, examples, InputRule(), tmp_path,
                               TrainConfig(min_steps=2, max_steps=2))  # mid-epoch: 12 examples are 3 steps

    assert converged["steps"] == len(converged["loss_curve"]) == converging.converged_steps and converged["stopped"].startswith("converged")
    assert budget["steps"] == 1 and budget["stopped"].startswith("token budget")
    assert (limit["steps"], len(limit["loss_curve"]), limit["stopped"]) == (2, 2, "step limit: 2 steps")
    assert list(registry(tmp_path, "task-001")["stopped"]) == [converged["stopped"], budget["stopped"], limit["stopped"]]


def test_an_adapter_is_trained_registered_as_the_next_version_and_reloads(tiny_checkpoint, tmp_path):
    _, tokenizer = load_base(tiny_checkpoint)
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(12)]
    rule = InputRule(learn_pruning(calls))
    examples = adapter_examples(tokenizer, calls, rule, 2048)
    config = TrainConfig(min_steps=12, max_steps=12, learning_rate=5e-3)
    logged = []

    first = train_task_adapter("task-001", "tiny", tiny_checkpoint, examples, rule, tmp_path, config, on_log=lambda *a: logged.append(a))
    fewer = replace(examples, examples=examples.examples[:6])
    second = train_task_adapter("task-001", "tiny", tiny_checkpoint, fewer, rule, tmp_path, replace(config, min_steps=2, max_steps=2))

    assert (first["version"], second["version"]) == (1, 2)
    assert first["data_sha256"] != second["data_sha256"] and len(first["base_sha256"]) == 64
    assert len(first["loss_curve"]) == 12 and first["loss_curve"][-1] < first["loss_curve"][0]
    assert first["stopped"] == "step limit: 12 steps"
    assert [step for step, _, _ in logged] == list(range(1, 13))
    table = registry(tmp_path, "task-001")
    assert list(table.columns) == list(SCHEMAS["adapters"]) and list(table["version"]) == [1, 2]
    folder = tmp_path / "task-001" / "v1"
    assert (folder / "adapter_model.safetensors").exists() and not (folder / "trainer").exists()
    assert input_rule(tmp_path, "task-001", 1) == rule  # the rule round-trips with the adapter
    assert first["prompt_tokens"] < first["prompt_tokens_full"]

    model, tokenizer = load_base(tiny_checkpoint)
    adapted = PeftModel.from_pretrained(model, folder)
    prompts = [prompt_text(tokenizer, rule.prepare(call(99, queue="billing")))]
    once = generate(adapted, tokenizer, prompts, max_new_tokens=8).texts
    again = generate(PeftModel.from_pretrained(load_base(tiny_checkpoint)[0], folder), tokenizer, prompts, max_new_tokens=8).texts
    assert once == again


def test_pick_scores_each_fitting_candidate_and_skips_a_task_too_small(tiny_checkpoint, tmp_path):
    calls = pd.DataFrame([call(i, queue=QUEUES[i % 3], day=i) for i in range(12)])
    embeddings = np.eye(12, dtype=np.float32)
    config = PickConfig(min_calls=10, score_sample=2)
    candidates = [tiny_candidate(tiny_checkpoint), tiny_candidate(tiny_checkpoint, name="short", context_length=16)]

    picked = pick_candidate("task-001", calls, embeddings, candidates, tmp_path, config, embed=lambda texts: np.ones((len(texts), 3)))

    assert picked.chosen == "tiny"
    rows = picked.table.set_index("candidate")
    assert rows.loc["tiny", "eligible"] and rows.loc["tiny", "calls_scored"] == 2
    assert 0 <= rows.loc["tiny", "zero_shot"] <= 1 and 0 <= rows.loc["tiny", "few_shot"] <= 1
    assert not rows.loc["short", "eligible"] and "exceeds its context of 16" in rows.loc["short", "reason"]
    assert rows.loc["tiny", "input_p50"] < rows.loc["tiny", "input_p50_full"]  # profiled on the pruned input
    # single-turn calls read the same in every window, so the smallest is chosen without scoring the others again
    assert rows.loc["tiny", "context_window"] == 2 and len(set(json.loads(rows.loc["tiny", "window_scores"]).values())) == 1
    assert rows.loc["tiny", "calls_unfit"] == 0

    pinned = pick_candidate("task-001", calls, embeddings, [*candidates, tiny_candidate(tiny_checkpoint, name="other")], tmp_path,
                            replace(config, pins={"task-001": "other"}), embed=lambda texts: np.ones((len(texts), 3)))
    rows = pinned.table.set_index("candidate")
    assert pinned.chosen == "other" and rows.loc["other", "calls_scored"] == 2
    assert not rows.loc["tiny", "eligible"] and rows.loc["tiny", "calls_scored"] == 0
    assert rows.loc["tiny", "reason"] == "not scored: the task is pinned to other"

    skipped = pick_candidate("task-002", calls.head(5), embeddings[:5], candidates, tmp_path, config, embed=None)
    assert skipped.chosen == "" and "5 calls, fewer than the 10" in skipped.reason


def test_pick_scores_a_task_of_long_logged_prompts_on_them_pruned_as_its_adapter_reads_them(tiny_checkpoint, tmp_path):
    calls = pd.DataFrame([call(i, queue=QUEUES[i % 3], day=i) for i in range(12)])
    read = []

    class Reading(TransformersEngine):
        def generate(self, prompts, *args, **kwargs):
            read.extend(prompts)
            return super().generate(prompts, *args, **kwargs)

    config = PickConfig(min_calls=10, score_sample=2)
    as_logged = pick_candidate("task-001", calls, np.eye(12, dtype=np.float32), [tiny_candidate(tiny_checkpoint)], tmp_path,
                               config, embed=lambda texts: np.ones((len(texts), 3)), load=Reading)
    assert as_logged.scored_on == "logged prompts" and all("Route the ticket." in prompt for prompt in read)

    read.clear()
    pruned = pick_candidate("task-001", calls, np.eye(12, dtype=np.float32), [tiny_candidate(tiny_checkpoint)], tmp_path,
                            replace(config, score_prompt_tokens=10), embed=lambda texts: np.ones((len(texts), 3)), load=Reading)
    assert pruned.scored_on == "pruned prompts" and pruned.chosen == "tiny"
    assert read and not any("Route the ticket." in prompt for prompt in read)  # the static policy line is pruned
    assert all("route_ticket(queue" in prompt for prompt in read)  # the tool, as its signature


def test_pick_neither_profiles_nor_scores_a_dearer_candidate_that_a_perfect_score_would_not_make_the_choice(tiny_checkpoint, tmp_path):
    calls = pd.DataFrame([call(i, text=f"answer {i}", day=i) for i in range(12)])
    same_vector = lambda texts: np.ones((len(texts), 3))  # every reply scores 1.0
    candidates = [tiny_candidate(tiny_checkpoint, name="dear", parameters=200_000, serving_usd_per_1m_tokens=0.02),
                  tiny_candidate(tiny_checkpoint)]

    picked = pick_candidate("task-001", calls, np.eye(12, dtype=np.float32), candidates, tmp_path,
                            PickConfig(min_calls=10, score_sample=2), embed=same_vector)

    rows = picked.table.set_index("candidate")
    assert picked.chosen == "tiny" and rows.loc["tiny", "few_shot"] == pytest.approx(1.0)
    assert rows.loc["dear", "calls_scored"] == 0 and rows.loc["dear", "input_p50"] == 0  # not even profiled
    assert rows.loc["dear", "reason"] == "not scored: a perfect score would not beat tiny by score_per_cost"


def test_pick_tries_the_next_candidate_once_one_is_given_up_on_the_task(tiny_checkpoint, tmp_path):
    calls = pd.DataFrame([call(i, text=f"answer {i}", day=i) for i in range(12)])
    same_vector = lambda texts: np.ones((len(texts), 3))
    candidates = [tiny_candidate(tiny_checkpoint, name="dear", parameters=200_000, serving_usd_per_1m_tokens=0.02),
                  tiny_candidate(tiny_checkpoint)]

    picked = pick_candidate("task-001", calls, np.eye(12, dtype=np.float32), candidates, tmp_path,
                            PickConfig(min_calls=10, score_sample=2), embed=same_vector,
                            given_up={"tiny": "its adapter v1 scored 0.41, below its few-shot 0.59"})

    rows = picked.table.set_index("candidate")
    assert picked.chosen == "dear" and rows.loc["dear", "calls_scored"] == 2
    assert rows.loc["tiny", "reason"] == "not tried again: its adapter v1 scored 0.41, below its few-shot 0.59"


def test_training_examples_renumber_placeholders_one_to_one_so_an_adapter_copies_the_id_rather_than_learning_its_number():
    rng = random.Random(0)
    seen = set()
    for _ in range(20):
        prompt, reply = renumbered(["I am <PERSON_1>, id <USER_ID_1>; book for <PERSON_2> and <PERSON_1>",
                                    '{"user_id": "<USER_ID_1>"}'], rng)
        people = re.findall(r"<PERSON_\d+>", prompt)
        assert people[0] == people[2] != people[1]  # the same value keeps one placeholder, two values stay two
        assert re.search(r"<USER_ID_\d+>", prompt)[0] in reply
        seen.add(re.search(r"<USER_ID_\d+>", reply)[0])
    assert len(seen) > 1


def test_calls_too_long_for_the_context_are_left_out_of_training_and_counted(tiny_checkpoint):
    _, tokenizer = load_base(tiny_checkpoint)
    long_ticket = {**call(9, queue="billing"), "messages": json.dumps([{"role": "user", "content": "refund please " * 200}])}

    made = adapter_examples(tokenizer, [call(i, queue="billing") for i in range(4)] + [long_ticket], InputRule(), 256)

    assert (len(made.examples), made.unfit) == (4, 1)
    assert all("refund please" not in example["prompt"] for example in made.examples)


def test_cross_validation_scores_every_call_once_by_an_adapter_trained_without_it(tiny_checkpoint, monkeypatch):
    calls = [call(i, queue=QUEUES[i % 3]) for i in range(10)]
    tokenizer, rule = load_tokenizer(tiny_checkpoint), InputRule()
    trained_on = []
    train = finetune.train.train_adapter

    def recording(checkpoint, examples, folder, config, *args):
        trained_on.append({example["prompt"] for example in examples})
        return train(checkpoint, examples, folder, config, *args)

    monkeypatch.setattr(finetune.train, "train_adapter", recording)
    scored = cross_validate(calls, "tool", tiny_checkpoint, rule, 2048, TrainConfig(min_steps=2, max_steps=2), 5, 8, embed=None)

    assert len(scored.scores) == len(scored.predictions) == 10 and len(trained_on) == 5
    for fold, prompts in zip(np.array_split(np.arange(10), 5), trained_on):
        unseen = {prompt_text(tokenizer, rule.prepare(calls[i])) for i in fold}
        assert len(prompts) == 8 and not unseen & prompts


def test_step_6_gives_the_base_model_what_the_adapter_reads_where_logged_prompts_are_long(tiny_checkpoint, tmp_path):
    calls = pd.DataFrame([call(i, queue=QUEUES[i % 3], day=i) for i in range(20)])
    records = calls.to_dict("records")
    rule = InputRule(learn_pruning(records))
    made = adapter_examples(load_tokenizer(tiny_checkpoint), records[:16], rule, 2048)
    train_task_adapter("task-001", "tiny", tiny_checkpoint, made, rule, tmp_path, TrainConfig(min_steps=2, max_steps=2))

    def evaluated(pick: PickConfig) -> pd.DataFrame:
        return evaluate_task("task-001", calls, np.eye(20, dtype=np.float32), "tiny", tiny_checkpoint, 2048, tmp_path, pick,
                             DecisionConfig(eval_sample=4), embed=None).table.set_index("variant")

    short, long = evaluated(PickConfig()), evaluated(PickConfig(score_prompt_tokens=10))
    assert short.loc["few_shot", "input_rule"] != short.loc["adapter", "input_rule"]  # as logged
    assert long.loc["few_shot", "input_rule"] == long.loc["adapter", "input_rule"] == rule.describe()
    assert long.loc["few_shot", "prompt_tokens"] < short.loc["few_shot", "prompt_tokens"]
