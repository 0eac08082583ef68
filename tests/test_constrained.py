"""Constrained decoding: a structured reply follows its JSON schema on every engine, from a model that would not."""

import json

from finetune.constrained import conforms, reply_schema
from finetune.engines import load_engine
from finetune.evaluate import score_model
from finetune.generate import Generated
from finetune.models import load_tokenizer
from finetune.prompts import prompt_text
from pipeline.context import InputRule
from pipeline.copying import learn_copying
from pipeline.pruning import learn_pruning
from pipeline.settings import EngineConfig

# a short id, so that even an untrained model's reply under the schema ends within its budget
TOOLS = [{"type": "function", "function": {"name": "get_user_details", "parameters": {
    "type": "object", "properties": {"user_id": {"type": "string", "maxLength": 12}}, "required": ["user_id"]}}}]


def lookup(user_id: str) -> dict:
    reply = [{"id": "c", "name": "get_user_details", "arguments": {"user_id": user_id}}]
    return {"messages": json.dumps([{"role": "user", "content": f"My user id is {user_id}."}]), "tools": json.dumps(TOOLS),
            "response_text": None, "response_tool_calls": json.dumps(reply)}


def test_a_tool_calls_schema_takes_only_an_offered_tool_with_its_arguments():
    schema = reply_schema(lookup("<USER_ID_1>"), "tool")
    assert conforms('{"name": "get_user_details", "arguments": {"user_id": "<USER_ID_1>"}}', schema)
    assert not conforms('{"name": "cancel_reservation", "arguments": {"user_id": "x"}}', schema)  # not offered
    assert not conforms('{"name": "get_user_details", "arguments": {}}', schema)  # a required argument missing
    assert not conforms('{"name": "get_user_details", "arguments": {"user_id": "x"}}{"name"', schema)  # broken off
    assert reply_schema(lookup("x"), "text") is None and conforms("anything", None)


def test_a_copied_argument_is_one_of_the_calls_own_words_of_the_shape_its_values_had():
    rule = learn_copying([lookup(f"USER{i:04d}") for i in range(10)], share=0.9)
    call = {**lookup("USER0042"), "messages": json.dumps([
        {"role": "user", "content": "My user id is USER0042, not USER9999; my name is Ann."}])}

    schema = reply_schema(call, "tool", rule, call)

    assert rule.describe() == "get_user_details.user_id"
    assert conforms('{"name": "get_user_details", "arguments": {"user_id": "USER0042"}}', schema)
    assert conforms('{"name": "get_user_details", "arguments": {"user_id": "USER9999"}}', schema)
    assert not conforms('{"name": "get_user_details", "arguments": {"user_id": "USER0043"}}', schema)  # not in the call
    assert not conforms('{"name": "get_user_details", "arguments": {"user_id": "Ann"}}', schema)  # not an id's shape


def test_an_argument_the_replies_do_not_find_in_their_input_stays_free():
    guessed = [{**lookup(f"USER{i:04d}"), "messages": json.dumps([{"role": "user", "content": "Who am I?"}])}
               for i in range(10)]

    assert learn_copying(guessed, share=0.9).arguments == ()
    assert learn_copying([lookup(f"USER{i:04d}") for i in range(4)], share=0.9).arguments == ()  # too few to tell


def test_an_adapter_is_scored_under_the_schema_of_every_tool_the_agent_offered_not_only_the_one_it_called(tiny_checkpoint):
    # a pruned call keeps only the tools the task calls, as text; in serving the request offers them all, so a
    # schema of the pruned call alone would hand the adapter the right tool's name in evaluation only
    cancel = {"type": "function", "function": {"name": "cancel_reservation", "parameters": {"type": "object"}}}
    calls = [{**lookup(f"user_{i}"), "tools": json.dumps(TOOLS + [cancel])} for i in range(4)]
    rule = InputRule(learn_pruning(calls, 0.9))
    assert json.loads(rule.prepare(calls[0])["tools"]) == []

    class Recording:
        name, tokenizer, schemas = "recording", load_tokenizer(tiny_checkpoint), []

        def generate(self, prompts, max_new_tokens, schemas=None):
            self.schemas.extend(schemas)
            return Generated(['{"name": "cancel_reservation", "arguments": {}}'] * len(prompts), 1.0, len(prompts))

    engine = Recording()
    score_model(engine, [rule.prepare(c) for c in calls], "tool", 16, embed=None, logged=calls)
    assert all(conforms('{"name": "cancel_reservation", "arguments": {}}', schema) for schema in engine.schemas)


def test_every_engine_answers_a_tool_call_under_its_schema_where_the_model_alone_would_not(tiny_checkpoint, tmp_path):
    calls = [lookup(f"user_{i}") for i in range(3)]
    schemas = [reply_schema(call, "tool") for call in calls]
    for config in (EngineConfig(engine="transformers"), EngineConfig(engine="ctranslate2", compute_type="float32")):
        engine = load_engine(tiny_checkpoint, None, config, tmp_path / "engines")
        prompts = [prompt_text(engine.tokenizer, call) for call in calls]
        free = engine.generate(prompts, 48).texts
        bound = engine.generate(prompts, 48, schemas).texts
        assert not all(conforms(text, schema) for text, schema in zip(free, schemas))  # a tiny untrained model
        assert all(conforms(text, schema) for text, schema in zip(bound, schemas)), (config.engine, bound)


def test_a_reply_drafted_from_the_prompt_is_the_one_decoded_token_by_token_and_follows_its_schema(tiny_checkpoint, tmp_path):
    # prompt lookup drafts tokens the schema must be asked about, then takes back the ones the model did not confirm:
    # the constraint follows the reply back and forth
    calls = [lookup(f"user_{i}") for i in range(4)]
    stepwise = load_engine(tiny_checkpoint, None, EngineConfig(prompt_lookup=0), tmp_path / "engines")
    drafted = load_engine(tiny_checkpoint, None, EngineConfig(prompt_lookup=10), tmp_path / "engines")
    for call in calls:
        prompt, schema = prompt_text(stepwise.tokenizer, call), reply_schema(call, "tool")
        expected = stepwise.generate([prompt], 48, [schema]).texts[0]
        assert drafted.generate([prompt], 48, [schema]).texts[0] == expected
        assert conforms(expected, schema)
