"""Score a small model's replies against the LLM's logged replies on held-out calls.

A reply is a string in the project's convention: a tool call is JSON `{"name": ..., "arguments": {...}}` (several
calls: a JSON list of them), a JSON reply is the JSON text, a text reply is plain text. Each kind gets metrics that
say what went wrong, plus a headline `score` in [0, 1] that steps 4 and 6 can average and compare:

- tool: the right tools in the right order, and how many argument fields are right (`name_match * field_f1`);
- json: how many (path, value) fields are right (`field_f1`), so one wrong field costs a little, not everything;
- text: cosine similarity of sentence embeddings (ROUGE-L alongside, as a check that does not depend on a model).

Small models wrap JSON in prose or let it run on into junk, so `valid_json` asks whether the whole reply parses,
while the field scores read the first JSON value in it: a right answer with junk after it still earns its fields.
Values are compared after normalization (key order, case and surrounding whitespace of strings, 1 vs 1.0 do not
matter; "1" vs 1 and true vs 1 do), because the LLM's own replies vary in exactly those ways without changing meaning.
`bootstrap_ci` puts a confidence interval on a mean score, since held-out sets are often a few dozen calls.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rouge_score import rouge_scorer
from scipy import stats

if TYPE_CHECKING:
    from pipeline.judge import Judge

Embed = Callable[[list[str]], np.ndarray]

# Stop tokens are an artifact of decoding, not part of the answer: ChatML/Llama 3/Phi `<|...|>`, Mistral `</s>`, Gemma.
_STOP_TOKENS = re.compile(r"(?:\s*(?:<\|[^<>|]*\|>|</s>|<end_of_turn>|<eos>))+\s*$")
# Sentinel for "no JSON found": JSON's own null is a valid reply.
_NOTHING = object()

FieldPath = tuple[str | int, ...]
Leaf = tuple[Any, ...]


def tool_call_scores(reference: str, prediction: str) -> dict[str, float]:
    """`valid_json`, `name_match` (same tools in the same order), `exact_args`, `field_f1` over the arguments."""
    valid, value = _read_json(prediction)
    if value is _NOTHING:
        return {"valid_json": 0.0, "name_match": 0.0, "exact_args": 0.0, "field_f1": 0.0}
    expected, got = _tool_calls(json.loads(reference)), _tool_calls(value)
    name_match = [name for name, _ in got] == [name for name, _ in expected]
    exact_args = name_match and all(_leaves(a) == _leaves(b) for (_, a), (_, b) in zip(expected, got))
    return {
        "valid_json": float(valid),
        "name_match": float(name_match),
        "exact_args": float(exact_args),
        "field_f1": _f1(_argument_leaves(expected), _argument_leaves(got)),
    }


def json_scores(reference: str, prediction: str) -> dict[str, float]:
    """`valid_json`, `exact_match` after normalization, `field_f1` over flattened (path, value) pairs."""
    valid, value = _read_json(prediction)
    if value is _NOTHING:
        return {"valid_json": 0.0, "exact_match": 0.0, "field_f1": 0.0}
    expected, got = _leaves(json.loads(reference)), _leaves(value)
    return {"valid_json": float(valid), "exact_match": float(expected == got), "field_f1": _f1(expected, got)}


def text_scores(references: list[str], predictions: list[str], embed: Embed) -> pd.DataFrame:
    """`similarity` (cosine of the embeddings) and `rouge_l` (F-measure), one row per reply."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        return pd.DataFrame({"similarity": pd.Series(dtype=float), "rouge_l": pd.Series(dtype=float)})
    predictions = [_STOP_TOKENS.sub("", p) for p in predictions]
    vectors = np.asarray(embed(references + predictions), dtype=float)
    # Callers' embedders do not all normalize; a zero vector (e.g. an empty reply) gets similarity 0, not NaN.
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = np.sum(vectors[: len(references)] * vectors[len(references):], axis=1)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge_l = [scorer.score(r, p)["rougeL"].fmeasure for r, p in zip(references, predictions)]
    return pd.DataFrame({"similarity": similarity, "rouge_l": rouge_l})


def score_replies(kind: str, references: list[str], predictions: list[str], embed: Embed | None = None,
                  judge: Judge | None = None, requests: list[str] | None = None) -> pd.DataFrame:
    """One row per reply: the metrics of its kind ("tool", "json" or "text") and a headline `score` in [0, 1].

    With a `judge` (`pipeline.judge`), a text reply's score is the judge's rating of it against the reference, given
    the `requests` they answer; tool calls and JSON keep their exact field scores."""
    if kind == "tool":
        frame = _rows(tool_call_scores, references, predictions, ["valid_json", "name_match", "exact_args", "field_f1"])
        return frame.assign(score=frame["name_match"] * frame["field_f1"])
    if kind == "json":
        frame = _rows(json_scores, references, predictions, ["valid_json", "exact_match", "field_f1"])
        return frame.assign(score=frame["field_f1"])
    if kind == "text":
        if embed is None:
            raise ValueError("text replies need an `embed` function")
        frame = text_scores(references, predictions, embed)
        if judge is not None:
            frame["judge"] = judge(requests or [""] * len(references), references, [_STOP_TOKENS.sub("", p) for p in predictions])
            return frame.assign(score=frame["judge"])
        return frame.assign(score=frame["similarity"].clip(0.0, 1.0))
    raise ValueError(f"unknown reply kind {kind!r}; expected 'tool', 'json' or 'text'")


def bootstrap_ci(scores: Sequence[float], level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (2,000 resamples, seeded); (mean, mean) when nothing varies."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise ValueError("no scores to bootstrap")
    mean = float(values.mean())
    if values.size < 2 or np.all(values == values[0]):
        return mean, mean
    # Samples with few distinct values can still give scipy a degenerate resample distribution (a warning and NaN).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((values,), np.mean, n_resamples=2000, confidence_level=level, method="percentile",
                                 rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (mean, mean) if np.isnan(low) or np.isnan(high) else (low, high)


def _rows(scores: Callable[[str, str], dict[str, float]], references: list[str], predictions: list[str],
          columns: list[str]) -> pd.DataFrame:
    rows = [scores(r, p) for r, p in zip(references, predictions, strict=True)]
    return pd.DataFrame(rows, columns=columns, dtype=float)


def _read_json(prediction: str) -> tuple[bool, Any]:
    """Whether the whole prediction is JSON, and the first JSON value in it (`_NOTHING` when there is none)."""
    text = _STOP_TOKENS.sub("", prediction).strip()
    with suppress(json.JSONDecodeError):
        return True, json.loads(text)
    decoder = json.JSONDecoder()
    # Not only the first bracket: prose before the JSON may hold one ("[see below]").
    for start in re.finditer(r"[{\[]", text):
        with suppress(json.JSONDecodeError):
            return False, decoder.raw_decode(text, start.start())[0]
    return False, _NOTHING


def _tool_calls(value: Any) -> list[tuple[Any, Any]]:
    """(name, arguments) of each call; a lone object is one call, and anything not an object a call of no tool."""
    calls = []
    for call in value if isinstance(value, list) else [value]:
        if not isinstance(call, dict):
            calls.append((None, {}))
            continue
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            # The OpenAI format, which the conversations a model learns from use for earlier turns, encodes
            # arguments as a JSON string; a model may copy that.
            with suppress(json.JSONDecodeError):
                arguments = json.loads(arguments)
        calls.append((call.get("name"), arguments))
    return calls


def _argument_leaves(calls: list[tuple[Any, Any]]) -> set[tuple[FieldPath, Leaf]]:
    """Every call's argument fields, their paths led by the call's index so calls compare position by position."""
    return {((index, *path), leaf) for index, (_, arguments) in enumerate(calls) for path, leaf in _leaves(arguments)}


def _leaves(value: Any, path: FieldPath = ()) -> set[tuple[FieldPath, Leaf]]:
    """(path, normalized value) pairs; paths hold keys and list indexes, so `a.b[1].c` is ("a", "b", 1, "c").

    Paths are unique and empty objects and lists are leaves of their own, so two values are equal after
    normalization exactly when their sets of leaves are.
    """
    if isinstance(value, dict) and value:
        return {leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))}
    if isinstance(value, list) and value:
        return {leaf for index, item in enumerate(value) for leaf in _leaves(item, (*path, index))}
    return {(path, _normalized(value))}


def _normalized(value: Any) -> Leaf:
    # Tagged by type because Python's True == 1 == 1.0 would make a boolean match a number.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value.strip().casefold())
    if isinstance(value, dict):
        return ("object",)
    if isinstance(value, list):
        return ("array",)
    return ("null",)


def _f1(expected: set, got: set) -> float:
    if not expected and not got:
        return 1.0
    hits = len(expected & got)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(got), hits / len(expected)
    return 2 * precision * recall / (precision + recall)
