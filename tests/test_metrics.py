"""Reply metrics on small hand-made replies: tool calls, JSON, text, the headline score, and bootstrap intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.metrics import bootstrap_ci, json_scores, score_replies, text_scores, tool_call_scores

LOOKUP = json.dumps({"name": "lookup_order", "arguments": {"order_id": "AC-1", "include_items": True}})


def letters(texts: list[str]) -> np.ndarray:
    """A tiny stand-in embedder: how often each letter a-z occurs (unnormalized on purpose)."""
    return np.array([[text.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for text in texts], dtype=float)


def test_right_tool_with_one_wrong_argument_gets_partial_field_credit_and_no_exact_match() -> None:
    prediction = '{"name": "lookup_order", "arguments": {"order_id": "AC-2", "include_items": true}}'
    scores = tool_call_scores(LOOKUP, prediction)
    assert scores["valid_json"] == 1.0
    assert scores["name_match"] == 1.0
    assert scores["exact_args"] == 0.0
    assert scores["field_f1"] == pytest.approx(0.5)


def test_wrong_tool_name_scores_zero_even_with_the_right_arguments() -> None:
    prediction = '{"name": "cancel_order", "arguments": {"order_id": "AC-1", "include_items": true}}'
    scores = tool_call_scores(LOOKUP, prediction)
    assert scores["name_match"] == 0.0
    assert scores["exact_args"] == 0.0
    assert score_replies("tool", [LOOKUP], [prediction])["score"].tolist() == [0.0]


def test_key_order_case_and_whitespace_do_not_matter() -> None:
    prediction = '{"arguments": {"include_items": true, "order_id": "  ac-1 "}, "name": "lookup_order"}'
    assert tool_call_scores(LOOKUP, prediction) == {"valid_json": 1.0, "name_match": 1.0, "exact_args": 1.0,
                                                    "field_f1": 1.0}


def test_integer_equals_float_but_not_the_same_digits_as_a_string_or_a_boolean() -> None:
    assert json_scores('{"n": 1}', '{"n": 1.0}')["exact_match"] == 1.0
    assert json_scores('{"n": 1}', '{"n": "1"}')["exact_match"] == 0.0
    assert json_scores('{"n": 1}', '{"n": true}')["exact_match"] == 0.0


def test_json_followed_by_junk_gets_field_credit_but_is_not_valid_json() -> None:
    prediction = 'Sure [see below]:\n{"name": "lookup_order", "arguments": {"order_id": "AC-1", "include_items": true}}' \
                 '\n}} assistant: done'
    scores = tool_call_scores(LOOKUP, prediction)
    assert scores["valid_json"] == 0.0
    assert scores["exact_args"] == 1.0
    assert scores["field_f1"] == 1.0


def test_a_trailing_stop_token_does_not_make_the_reply_invalid() -> None:
    assert json_scores('{"a": 1}', '{"a": 1}<|im_end|>')["valid_json"] == 1.0


def test_garbage_prediction_scores_zero_for_every_kind_of_structured_reply() -> None:
    assert set(tool_call_scores(LOOKUP, "I cannot help with that.").values()) == {0.0}
    assert set(json_scores('{"a": 1}', "{not json at all").values()) == {0.0}
    frame = score_replies("json", ['{"a": 1}', "[]"], ["nope", ""])
    assert frame["score"].tolist() == [0.0, 0.0]


def test_several_tool_calls_compare_position_by_position() -> None:
    reference = json.dumps([{"name": "lookup_order", "arguments": {"order_id": "AC-1"}},
                            {"name": "lookup_order", "arguments": {"order_id": "AC-2"}}])
    same = tool_call_scores(reference, reference)
    assert same["exact_args"] == 1.0 and same["field_f1"] == 1.0
    swapped = json.dumps([{"name": "lookup_order", "arguments": {"order_id": "AC-2"}},
                          {"name": "lookup_order", "arguments": {"order_id": "AC-1"}}])
    scores = tool_call_scores(reference, swapped)
    assert scores["name_match"] == 1.0
    assert scores["field_f1"] == 0.0
    only_first = tool_call_scores(reference, json.dumps({"name": "lookup_order", "arguments": {"order_id": "AC-1"}}))
    assert only_first["name_match"] == 0.0
    assert only_first["field_f1"] == pytest.approx(2 / 3)


def test_tool_call_without_arguments_matches_when_the_name_does() -> None:
    reference = '{"name": "list_orders", "arguments": {}}'
    assert score_replies("tool", [reference], ['{"name": "list_orders"}'])["score"].tolist() == [1.0]


def test_json_reply_scores_matching_nested_fields() -> None:
    reference = '{"intent": "refund", "order": {"id": "AC-1", "items": [{"sku": "X", "qty": 2}]}}'
    prediction = '{"order": {"items": [{"qty": 2.0, "sku": "x"}], "id": "AC-9"}, "intent": "Refund"}'
    scores = json_scores(reference, prediction)
    assert scores["valid_json"] == 1.0
    assert scores["exact_match"] == 0.0
    assert scores["field_f1"] == pytest.approx(0.75)
    assert score_replies("json", [reference], [prediction])["score"].tolist() == [pytest.approx(0.75)]


def test_text_similarity_is_high_for_identical_text_and_low_for_unrelated_text() -> None:
    frame = text_scores(["the parcel ships today", "the parcel ships today"], ["the parcel ships today", "xyz"],
                        letters)
    assert frame["similarity"][0] == pytest.approx(1.0)
    assert frame["similarity"][1] < 0.3
    assert frame["rouge_l"][0] == pytest.approx(1.0)
    assert frame["rouge_l"][1] == 0.0


def test_text_score_is_similarity_clipped_to_the_unit_interval() -> None:
    def opposite(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if i == 0 else [-1.0, 0.0] for i in range(len(texts))])

    assert score_replies("text", ["a"], ["b"], embed=opposite)["score"].tolist() == [0.0]


def test_unknown_kind_and_text_without_an_embedder_raise() -> None:
    with pytest.raises(ValueError, match="unknown reply kind"):
        score_replies("image", ["a"], ["a"])
    with pytest.raises(ValueError, match="embed"):
        score_replies("text", ["a"], ["a"])


def test_bootstrap_interval_brackets_the_mean_of_a_varied_sample() -> None:
    scores = [0.0, 0.2, 0.5, 0.5, 0.7, 0.9, 1.0, 1.0, 0.3, 0.8]
    low, high = bootstrap_ci(scores)
    assert low < np.mean(scores) < high
    assert 0.0 <= low and high <= 1.0
    assert bootstrap_ci(scores) == (low, high)


def test_bootstrap_interval_of_a_constant_or_single_sample_is_its_mean() -> None:
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)


def test_paraphrase_is_more_similar_than_an_unrelated_sentence_with_the_real_model() -> None:
    from finetune.models import embedding_model

    model = embedding_model()
    frame = text_scores(["Your order AC-1 ships tomorrow morning."] * 2,
                        ["Order AC-1 will be sent out tomorrow morning.", "Bananas are rich in potassium."],
                        lambda texts: model.encode(texts))
    assert frame["similarity"][0] > frame["similarity"][1] + 0.3
