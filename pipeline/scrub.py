"""Step 2, scrub: remove PII and secrets from every text a call carries, failing closed.

Agent logs repeat the same system prompt, tool definitions and tool results call after call, so each distinct
text is analyzed once, in spaCy batches, in worker processes. The findings then become placeholders call by call:
within a call (or a session) the same value is always the same `<PERSON_1>`, so a model fine-tuned on the calls
learns to carry placeholders through. No mapping back to raw values is kept.

A call any of whose texts could not be analyzed (an error, a time-out, over the size limit) never reaches
`clean_calls`: it is quarantined with the reason, and raw = clean + quarantined.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from cryptography.fernet import Fernet
from presidio_analyzer import RecognizerResult
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from presidio_anonymizer.operators import Operator, OperatorType

from pipeline.settings import ScrubConfig
from pipeline.warehouse import SCHEMAS, frame

# Schema words of tool definitions: never personal data, and scrubbing them would break the schema.
SCHEMA_KEYS = frozenset({"type", "name", "required", "format"})
MIN_DIGITS_TO_SCAN = 6  # numbers this long in JSON (a card or phone stored as a number) are scanned as text

Finding = tuple[str, int, int, float, str]  # entity type, start, end, score, recognizer

class TextAnalyzer(Protocol):
    def analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        """Per text, its findings, or the reason it could not be analyzed."""

Progress = Callable[[int, int], None]  # texts done, texts in all


@dataclass
class ScrubStats:
    calls: int = 0
    clean: int = 0
    quarantined: int = 0
    texts: int = 0
    distinct_texts: int = 0
    seconds: float = 0.0
    entities: dict[str, int] = field(default_factory=dict)
    recognizers: dict[str, int] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return self.calls == self.clean + self.quarantined


@dataclass
class Scrubbed:
    clean_calls: pd.DataFrame
    pii_audit: pd.DataFrame
    quarantine: pd.DataFrame
    vault: pd.DataFrame  # empty unless the config has a vault key
    stats: ScrubStats


def scrub_calls(raw_calls: pd.DataFrame, analyzer: TextAnalyzer, config: ScrubConfig = ScrubConfig()) -> Scrubbed:
    """Scrub every text of every call; calls that cannot be scrubbed are quarantined, with the reason."""
    started = time.perf_counter()
    calls = raw_calls.to_dict("records")
    texts_per_call = [call_texts(call) for call in calls]
    distinct = list(dict.fromkeys(t for texts in texts_per_call for t in texts))
    findings = _analyze_within_limits(distinct, analyzer, config.max_text_chars)

    anonymizer = AnonymizerEngine()
    anonymizer.add_anonymizer(_Pseudonym)
    sessions: dict[str, dict] = {}
    stats = ScrubStats(calls=len(calls), texts=sum(map(len, texts_per_call)), distinct_texts=len(distinct))
    vault = Fernet(config.vault_key.encode()) if config.vault_key else None
    clean, audit, quarantine, sealed = [], [], [], []
    for call, texts in zip(calls, texts_per_call):
        failures = sorted({findings[t] for t in texts if isinstance(findings[t], str)})
        if failures:
            quarantine.append(_quarantine_row(call, "; ".join(failures)))
            continue
        scope_key = call["session_id"] if config.scope == "session" and not pd.isna(call["session_id"]) else None
        mapping = sessions.setdefault(scope_key, {}) if scope_key else {}
        counts: Counter = Counter()

        def pseudonymize(document: str, pieces: list[tuple[int, int]]) -> list[str]:
            scrubbed = []
            for start, end in pieces:
                results = _within(findings[document], start, end)
                counts.update((kind, recognizer) for kind, _, _, _, recognizer in results)
                piece = document[start:end]
                scrubbed.append(_pseudonymize(anonymizer, piece, results, mapping) if results else piece)
            return scrubbed

        try:
            scrubbed = _map_call(call, pseudonymize)
        except Exception as error:  # fail closed: whatever went wrong, this call does not go on
            quarantine.append(_quarantine_row(call, f"scrub failed: {type(error).__name__}: {error}"))
            continue
        scrubbed["session_id"] = _pseudonymous_id(call["session_id"])
        scrubbed["pii_findings"] = sum(counts.values())
        clean.append(scrubbed)
        if vault and counts:
            values = {placeholder: value for of_type in mapping.values() for value, placeholder in of_type.items()}
            token = vault.encrypt(json.dumps(values, ensure_ascii=False).encode()).decode()
            sealed.append({"call_id": call["call_id"], "called_at": call["called_at"], "sealed": token})
        audit += [
            {"call_id": call["call_id"], "called_at": call["called_at"], "entity_type": k, "recognizer": r, "count": n}
            for (k, r), n in sorted(counts.items())
        ]
    stats.clean, stats.quarantined = len(clean), len(quarantine)
    stats.entities = _totals(audit, "entity_type")
    stats.recognizers = _totals(audit, "recognizer")
    stats.seconds = time.perf_counter() - started
    return Scrubbed(
        frame("clean_calls", clean),
        frame("pii_audit", audit),
        frame("quarantine", quarantine),
        frame("pii_vault", sealed),
        stats,
    )


def scrub_texts(texts: list[str], analyzer: TextAnalyzer) -> list[str | None]:
    """Each text scrubbed on its own (placeholders numbered per text); None where it could not be scrubbed."""
    findings = analyzer.analyze(texts)
    anonymizer = AnonymizerEngine()
    anonymizer.add_anonymizer(_Pseudonym)
    scrubbed = []
    for text, found in zip(texts, findings):
        if isinstance(found, str):
            scrubbed.append(None)
            continue
        scrubbed.append(_pseudonymize(anonymizer, text, found, {}) if found else text)
    return scrubbed


# --- analyzers -----------------------------------------------------------------------------------


class LocalAnalyzer:
    """Presidio in this process: for tests and small runs (no time-out can stop a stuck text here)."""

    def __init__(self, config: ScrubConfig = ScrubConfig(), progress: Progress | None = None):
        self._config, self._progress = config, progress
        self._presidio = _Presidio(config)

    def analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        results: list[list[Finding] | str] = []
        for chunk in _chunks(texts, self._config.batch_size):
            results += self._presidio.analyze(chunk)
            if self._progress:
                self._progress(len(results), len(texts))
        return results

    def close(self) -> None:
        """Nothing to stop: the analysis runs in this process."""


class PooledAnalyzer:
    """Presidio in worker processes, a chunk of texts at a time, each chunk under a time limit."""

    def __init__(self, config: ScrubConfig, progress: Progress | None = None):
        self._config, self._progress = config, progress
        # spawn: the Dagster run process holds threads, which fork does not copy safely
        self._pool = multiprocessing.get_context("spawn").Pool(
            config.processes, initializer=_start_worker, initargs=(config,)
        )

    def analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        config = self._config
        chunks = _chunks(texts, config.batch_size)
        pending = [self._pool.apply_async(_analyze_in_worker, (chunk,)) for chunk in chunks]
        results: list[list[Finding] | str] = []
        for chunk, job in zip(chunks, pending):
            try:
                results += job.get(timeout=config.timeout_s)
            except multiprocessing.TimeoutError:
                results += [f"scrub timed out (over {config.timeout_s:g} s for a batch)"] * len(chunk)
            except Exception as error:
                results += [f"scrub failed: {type(error).__name__}: {error}"] * len(chunk)
            if self._progress:
                self._progress(len(results), len(texts))
        return results

    def close(self) -> None:
        self._pool.terminate()  # also stops a worker still stuck on a timed-out chunk


@contextmanager
def open_analyzer(config: ScrubConfig, progress: Progress | None = None) -> Iterator[TextAnalyzer]:
    """Worker processes when `config.processes` > 0, else this process; closed (workers stopped) on exit."""
    analyzer = PooledAnalyzer(config, progress) if config.processes > 0 else LocalAnalyzer(config, progress)
    try:
        yield analyzer
    finally:
        analyzer.close()


def _chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


class _Presidio:
    """Presidio's batch engine with the deployment's recognizers and allow-list."""

    def __init__(self, config: ScrubConfig):
        from presidio_analyzer import BatchAnalyzerEngine

        from pipeline.recognizers import build_analyzer

        self._engine = BatchAnalyzerEngine(build_analyzer(config.deny_lists, config.patterns))
        self._batch_size = config.batch_size
        self._allowed = re.compile("|".join(f"(?:{p})" for p in config.allow)) if config.allow else None

    def analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        """One spaCy batch; if it fails, text by text, so one bad text does not take its neighbours down."""
        try:
            batch = self._engine.analyze_iterator(texts, language="en", batch_size=self._batch_size)
            return [self._kept(text, results) for text, results in zip(texts, batch)]
        except Exception:
            findings: list[list[Finding] | str] = []
            for text in texts:
                try:
                    findings.append(self._kept(text, self._engine.analyzer_engine.analyze(text, language="en")))
                except Exception as error:
                    findings.append(f"scrub failed: {type(error).__name__}: {error}")
            return findings

    def _kept(self, text: str, results: list[RecognizerResult]) -> list[Finding]:
        """The findings, but those inside an allowed value: Presidio's own allow-list only compares the finding's
        text, so it keeps "397848" found as a phone number inside the allowed order id "AC-397848"."""
        allowed = [m.span() for m in self._allowed.finditer(text)] if self._allowed else []
        return [
            f for f in _findings(results) if not any(start <= f[1] and f[2] <= end for start, end in allowed)
        ]


_worker: _Presidio | None = None


def _start_worker(config: ScrubConfig) -> None:
    global _worker
    _worker = _Presidio(config)


def _analyze_in_worker(texts: list[str]) -> list[list[Finding] | str]:
    return _worker.analyze(texts)


def _findings(results: list[RecognizerResult]) -> list[Finding]:
    return [
        (r.entity_type, r.start, r.end, r.score, (r.recognition_metadata or {}).get("recognizer_name", "unknown"))
        for r in results
    ]


def _analyze_within_limits(texts: list[str], analyzer: TextAnalyzer, max_chars: int) -> dict[str, list[Finding] | str]:
    findings: dict[str, list[Finding] | str] = {
        t: f"text over the scrub size limit ({len(t)} chars > {max_chars})" for t in texts if len(t) > max_chars
    }
    to_analyze = [t for t in texts if t not in findings]
    results = analyzer.analyze(to_analyze) if to_analyze else []
    if len(results) != len(to_analyze):  # never let a short answer leave texts unscrubbed
        return {t: "scrub failed: the analyzer lost texts" for t in texts}
    findings.update(zip(to_analyze, results))
    return findings


# --- where a call's texts are ---------------------------------------------------------------------


# fn(document, pieces) -> the pieces scrubbed. A plain text is one piece of its own document. A JSON value is
# analyzed as one document of `key: value` lines, so each key gives its value context ("password: hunter2") and
# a tool result is one analysis, not one per field; only the values (the pieces) are ever changed.
TextFn = Callable[[str, list[tuple[int, int]]], list[str]]


def call_texts(call: dict) -> list[str]:
    """Every document of a call as the analyzer reads it, in order, repeats included."""
    texts: list[str] = []

    def collect(document: str, pieces: list[tuple[int, int]]) -> list[str]:
        texts.append(document)
        return [document[start:end] for start, end in pieces]

    _map_call(call, collect)
    return texts


def _map_call(call: dict, fn: TextFn) -> dict:
    """The call with every text it carries passed through `fn`: messages, tool definitions, the reply, tool-call
    arguments and JSON tool results (string values only: keys and structure stay, and the JSON stays valid)."""
    out = {key: call[key] for key in SCHEMAS["clean_calls"] if key in call}
    messages = json.loads(call["messages"])
    for message in messages:
        if message.get("content"):
            message["content"] = _map_text_or_json(message["content"], fn)
        for tool_call in message.get("tool_calls") or []:
            tool_call["function"]["arguments"] = _map_text_or_json(tool_call["function"]["arguments"], fn)
    out["messages"] = json.dumps(messages, ensure_ascii=False)
    out["tools"] = json.dumps(_map_json(json.loads(call["tools"]), fn, SCHEMA_KEYS), ensure_ascii=False)
    if not pd.isna(call["response_text"]):
        out["response_text"] = _map_text_or_json(call["response_text"], fn)
    tool_calls = json.loads(call["response_tool_calls"])
    for tool_call in tool_calls:
        arguments = tool_call["arguments"]
        tool_call["arguments"] = _map_text_or_json(arguments, fn) if isinstance(arguments, str) else _map_json(arguments, fn)
    out["response_tool_calls"] = json.dumps(tool_calls, ensure_ascii=False)
    if not pd.isna(call["workload"]):
        out["workload"] = _map_text(call["workload"], fn)
    return out


def _map_text(text: str, fn: TextFn) -> str:
    return fn(text, [(0, len(text))])[0]


def _map_text_or_json(text: str, fn: TextFn) -> str:
    """A JSON object or array keeps its structure (re-serialized only when something in it changed)."""
    if text[:1] in "{[":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return _map_text(text, fn)
        mapped = _map_json(value, fn)
        return text if mapped == value else json.dumps(mapped, ensure_ascii=False)
    return _map_text(text, fn)


def _map_json(value: Any, fn: TextFn, keep: frozenset[str] = frozenset()) -> Any:
    """Every string value (and long number) mapped, but those under the keys in `keep`; keys are never touched."""
    copy = json.loads(json.dumps(value))  # to write into, leaving the caller's value as it was
    leaves: list[tuple[Any, Any, str, str]] = []  # container, key or index, label, text
    _find_leaves(copy, keep, "", leaves)
    if not leaves:
        return value
    lines, pieces, offset = [], [], 0
    for _, _, label, text in leaves:
        pieces.append((offset + len(label), offset + len(label) + len(text)))
        lines.append(label + text)
        offset += len(label) + len(text) + len(_LEAF_SEPARATOR)
    for (container, key, _, text), mapped in zip(leaves, fn(_LEAF_SEPARATOR.join(lines), pieces)):
        if mapped != text:
            container[key] = mapped  # a number found to be personal becomes its placeholder string
    return copy


_LEAF_SEPARATOR = "\n\n"  # a blank line: address and name patterns do not run on across it


def _find_leaves(value: Any, keep: frozenset[str], label: str, leaves: list) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        if isinstance(value, dict) and key in keep:
            continue
        item_label = _label(key) if isinstance(value, dict) else label
        if isinstance(item, str) and item:
            leaves.append((value, key, item_label, item))
        elif isinstance(item, int) and not isinstance(item, bool) and len(str(abs(item))) >= MIN_DIGITS_TO_SCAN:
            leaves.append((value, key, item_label, str(item)))
        elif isinstance(item, (dict, list)):
            _find_leaves(item, keep, item_label, leaves)


def _label(key: str) -> str:
    """`aws_secret_access_key` -> "aws secret access key: ", `dateOfBirth` -> "date Of Birth: "."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|[-_.]+", " ", key).strip()
    return f"{words}: " if words else ""


def _within(findings: list[Finding], start: int, end: int) -> list[Finding]:
    """The findings that touch the piece [start, end), clipped to it and counted from its start."""
    return [
        (kind, max(f_start, start) - start, min(f_end, end) - start, score, recognizer)
        for kind, f_start, f_end, score, recognizer in findings
        if f_end > start and f_start < end
    ]


# --- placeholders --------------------------------------------------------------------------------


def _pseudonymize(anonymizer: AnonymizerEngine, text: str, findings: list[Finding], mapping: dict) -> str:
    # Presidio replaces from the end of the text backwards: number the values in reading order first.
    for kind, start, end, _, _ in sorted(findings, key=lambda f: f[1]):
        of_type = mapping.setdefault(kind, {})
        of_type.setdefault(text[start:end], f"<{kind}_{len(of_type) + 1}>")
    operators = {"DEFAULT": OperatorConfig(_Pseudonym.NAME, {"mapping": mapping})}
    return anonymizer.anonymize(text, [RecognizerResult(*f[:4]) for f in findings], operators).text


class _Pseudonym(Operator):
    """Presidio operator: the n-th distinct value of a type in a call becomes `<TYPE_n>`, the same each time."""

    NAME = "pseudonym"

    def operate(self, text: str, params: dict) -> str:
        of_type = params["mapping"].setdefault(params["entity_type"], {})
        if text not in of_type:
            of_type[text] = f"<{params['entity_type']}_{len(of_type) + 1}>"
        return of_type[text]

    def validate(self, params: dict) -> None:
        if not isinstance(params.get("mapping"), dict):
            raise ValueError("the pseudonym operator needs a mapping dict")

    def operator_name(self) -> str:
        return self.NAME

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize


def _pseudonymous_id(value: Any) -> str | None:
    """Session ids can be user names or emails: keep the grouping, not the value."""
    return None if pd.isna(value) else "s-" + hashlib.sha256(str(value).encode()).hexdigest()[:16]


def _quarantine_row(call: dict, reason: str) -> dict:
    # no excerpt: the text is raw, and nothing raw may leave this step
    return {"called_at": call["called_at"], "step": "scrub", "source_file": call["source_file"],
            "source_line": call["source_line"], "reason": reason, "excerpt": ""}


def _totals(audit: list[dict], key: str) -> dict[str, int]:
    totals: Counter = Counter()
    for row in audit:
        totals[row[key]] += row["count"]
    return dict(totals.most_common())
