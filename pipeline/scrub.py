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
import hmac
import json
import math
import multiprocessing
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
from cryptography.fernet import Fernet
from pebble import ProcessExpired, ProcessPool

from pipeline.collect import LOG_FILE
from pipeline.propagation import Known
from pipeline.settings import ScrubConfig
from pipeline.warehouse import SCHEMAS, frame

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult

# Schema words of tool definitions: never personal data, and scrubbing them would break the schema.
SCHEMA_KEYS = frozenset({"type", "name", "required", "format"})
_NAMED_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP"})  # what NER reads from prose
STATIC_MIN_CALLS = 20  # a text in fewer calls is never taken for the agent's own, whatever the share
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
    verification_failures: int = 0  # scrubbed calls in which the last pass still found something: quarantined
    verification_seconds: float = 0.0
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


def scrub_calls(raw_calls: pd.DataFrame, analyzer: TextAnalyzer, config: ScrubConfig = ScrubConfig(),
                session_key: bytes = b"") -> Scrubbed:
    """Scrub every text of every call; calls that cannot be scrubbed are quarantined, with the reason. Session ids
    become keyed hashes under `session_key` (see `session_key`)."""
    started = time.perf_counter()
    calls = raw_calls.to_dict("records")
    texts_per_call = [_texts_or_reason(call) for call in calls]
    distinct = list(dict.fromkeys(t for texts in texts_per_call if isinstance(texts, list) for t in texts))
    findings = _analyze_within_limits(distinct, analyzer, config)

    from pipeline.placeholders import Placeholders  # Presidio loads torch: imported where it is used

    placeholders = Placeholders()
    stats = ScrubStats(calls=len(calls), texts=sum(len(t) for t in texts_per_call if isinstance(t, list)),
                       distinct_texts=len(distinct))
    vault = Fernet(config.vault_key.encode()) if config.vault_key else None
    clean, audit, quarantine, sealed = [], [], [], []
    scrubbable = []
    for call, texts in zip(calls, texts_per_call):
        if isinstance(texts, str):
            quarantine.append(_quarantine_row(call, texts))
            continue
        failures = sorted({findings[t] for t in texts if isinstance(findings[t], str)})
        if failures:
            quarantine.append(_quarantine_row(call, "; ".join(failures)))
            continue
        scrubbable.append(call)

    allowed = re.compile("|".join(f"(?:{p})" for p in config.allow)) if config.allow else None
    # the agent's own text, in many calls (its system prompt, its tool schemas): scrubbed of what it holds itself,
    # never of what a customer's call holds (a customer from "Acme" must not change the policy, nor its tool's
    # `"pattern": "^AC-\d{6}$"`, in their call only), and what is found in it is nobody's to propagate. Texts are
    # counted with their dates and times masked (a system prompt that begins with the current time is one text, one
    # that holds each customer's account number is not); those dates and times are not the agent's own, and go by
    # the conversation's values like any customer's text (a date of birth in "Customer since 1990-01-02").
    masked = {t: _DATE_OR_TIME.sub("<time>", t) for t in distinct}
    uses = Counter(m for texts in texts_per_call if isinstance(texts, list) for m in {masked[t] for t in texts})
    static = {t for t in distinct if uses[masked[t]] >= max(STATIC_MIN_CALLS, config.static_share * len(calls))}
    variable = {t: [m.span() for m in _DATE_OR_TIME.finditer(t)] for t in static}

    def variable_parts(document: str, piece: Piece) -> list[tuple[int, int]] | None:
        # where in the piece the agent's own text changes between calls; None: the whole piece is the customer's
        if document not in static:
            return None
        return [(s - piece.start, e - piece.start) for s, e in variable[document]
                if _inside(s, e, [(piece.start, piece.end)])]

    def found_in(document: str, piece: Piece) -> list[Finding]:
        # what a key says first: where a detector gave the same value another type, the key's is kept
        return _by_key(piece, document, config) + _within(findings[document], piece.start, piece.end)

    def kept(text: str, results: list[Finding], piece: Piece) -> list[Finding]:
        # Presidio's own allow-list compares a finding's text only: it would keep "397848" found as a phone number
        # inside the allowed order id "AC-397848"
        spans = [m.span() for m in allowed.finditer(text)] if allowed else []
        # a tool name is a program's identifier, where NER's people and places are noise (ToolBench's `Finish` a
        # nationality, `raiderio_call_for_raider_io` a person); secrets, e-mails and numbers still count
        return [f for f in results
                if not _inside(f[1], f[2], spans) and not (piece.tool_name and f[0] in _NAMED_ENTITIES)]

    # first what each conversation holds, from all its calls, then each call scrubbed of all of it: a customer who
    # types their name in lower case before any tool result names them is found through the later calls
    sessions = Counter(call["session_id"] for call in scrubbable if not pd.isna(call["session_id"]))
    conversation = {call["call_id"]: _conversation(call, sessions, config) for call in scrubbable}
    known: dict[Any, Known] = {}
    for call in scrubbable:
        scope = known.setdefault(conversation[call["call_id"]], Known())

        def remember(document: str, pieces: list[Piece]) -> list[str]:
            for piece in pieces:
                within = variable_parts(document, piece)
                if within == []:
                    continue
                text = document[piece.start : piece.end]
                for kind, start, end, _, _ in kept(text, found_in(document, piece), piece):
                    if within is None or _inside(start, end, within):
                        scope.add(kind, text[start:end])
            return [document[piece.start : piece.end] for piece in pieces]

        _map_call(call, remember)

    mappings: dict[Any, dict] = {}
    for call in scrubbable:
        scope_key = _scope(call, config)
        mapping = mappings.setdefault(scope_key, {})
        counts: Counter = Counter()

        def pseudonymize(document: str, pieces: list[Piece]) -> list[str]:
            scrubbed = []
            for piece in pieces:
                text = document[piece.start : piece.end]
                found = found_in(document, piece)
                within = variable_parts(document, piece)
                if within != []:
                    found = known[conversation[call["call_id"]]].findings(text, found, identifiers=not piece.tool_name,
                                                                          within=within)
                results = kept(text, found, piece)
                counts.update((kind, recognizer) for kind, _, _, _, recognizer in results)
                scrubbed.append(placeholders.replace(text, results, mapping) if results else text)
            return scrubbed

        try:
            scrubbed = _map_call(call, pseudonymize)
        except Exception as error:  # fail closed: whatever went wrong, this call does not go on
            quarantine.append(_quarantine_row(call, f"scrub failed: {type(error).__name__}: {error}"))
            continue
        scrubbed["session_id"] = _pseudonymous_id(call["session_id"], session_key)
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
    verified = time.perf_counter()
    clean, failed = _verified(clean, config)
    stats.verification_seconds = time.perf_counter() - verified
    stats.verification_failures = len(failed)
    quarantine += [_quarantine_row(call, reason) for call, reason in failed]
    audit = [row for row in audit if row["call_id"] not in {call["call_id"] for call, _ in failed}]
    sealed = [row for row in sealed if row["call_id"] not in {call["call_id"] for call, _ in failed}]
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
    from pipeline.placeholders import Placeholders

    placeholders = Placeholders()
    scrubbed = []
    for text, found in zip(texts, findings):
        if isinstance(found, str):
            scrubbed.append(None)
            continue
        scrubbed.append(placeholders.replace(text, found, {}) if found else text)
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
    """Presidio in worker processes, a chunk of texts at a time under `timeout_s`. A chunk that runs out of time, or
    whose worker dies, is tried again text by text under `text_timeout_s`, so that only the slow text's call is
    quarantined. pebble stops a worker at its task's time limit and says at once when one dies."""

    def __init__(self, config: ScrubConfig, progress: Progress | None = None, start: Callable | None = None):
        self._config, self._progress = config, progress
        # spawn: the Dagster run process holds threads, which fork does not copy safely
        self._pool = ProcessPool(max_workers=config.processes, initializer=start or _start_worker, initargs=(config,),
                                 context=multiprocessing.get_context("spawn"))

    def analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        try:
            return self._analyze(texts)
        except RuntimeError as error:  # pebble's pool is broken: a worker's detectors could not load
            reason = f"scrub failed: the detectors could not start in a worker process ({error}; see the log)"
            return [reason] * len(texts)

    def _analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        config = self._config
        chunks = _chunks(texts, config.batch_size)
        pending = [self._pool.schedule(_analyze_in_worker, (chunk,), timeout=config.timeout_s) for chunk in chunks]
        results: list[list[Finding] | str] = []
        for chunk, job in zip(chunks, pending):
            try:
                results += job.result()
            except Exception:  # out of time, a dead worker, or an error: each text on its own
                results += self._one_by_one(chunk)
            if self._progress:
                self._progress(len(results), len(texts))
        return results

    def _one_by_one(self, texts: list[str]) -> list[list[Finding] | str]:
        budget = self._config.text_timeout_s
        jobs = [self._pool.schedule(_analyze_in_worker, ([text],), timeout=budget) for text in texts]
        results: list[list[Finding] | str] = []
        for job in jobs:
            try:
                results += job.result()
            except FutureTimeout:
                results.append(f"scrub timed out (over {budget:g} s for one text)")
            except ProcessExpired as error:
                results.append(f"scrub failed: its worker died (exit code {error.exitcode})")
            except Exception as error:
                results.append(f"scrub failed: {type(error).__name__}: {error}")
        return results

    def close(self) -> None:
        self._pool.stop()  # also stops a worker still busy with a text
        self._pool.join()


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
    """Presidio's batch engine with the deployment's recognizers."""

    def __init__(self, config: ScrubConfig):
        from presidio_analyzer import BatchAnalyzerEngine

        from pipeline.recognizers import build_analyzer

        self._engine = BatchAnalyzerEngine(build_analyzer(
            config.deny_lists, config.patterns, config.spacy_model,
            rampart_threads=_threads_per_worker(config) if config.rampart else None,
        ))
        self._batch_size = config.batch_size

    def analyze(self, texts: list[str]) -> list[list[Finding] | str]:
        """One spaCy batch; if it fails, text by text, so one bad text does not take its neighbours down."""
        try:
            batch = self._engine.analyze_iterator(texts, language="en", batch_size=self._batch_size)
            return [_findings(results) for results in batch]
        except Exception:
            findings: list[list[Finding] | str] = []
            for text in texts:
                try:
                    findings.append(_findings(self._engine.analyzer_engine.analyze(text, language="en")))
                except Exception as error:
                    findings.append(f"scrub failed: {type(error).__name__}: {error}")
            return findings


def _threads_per_worker(config: ScrubConfig) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, config.processes))


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


def _analyze_within_limits(texts: list[str], analyzer: TextAnalyzer, config: ScrubConfig) -> dict[str, list[Finding] | str]:
    findings: dict[str, list[Finding] | str] = {}
    for text in texts:
        if len(text) > config.max_text_chars:
            findings[text] = f"text over the scrub size limit ({len(text)} chars > {config.max_text_chars})"
        elif (digits := sum(c.isdigit() for c in text)) > config.max_text_digits:
            # digit runs are where the number recognizers' patterns take longest: 99k digit-heavy chars took 83 s
            findings[text] = f"text with too many digits to scrub in time ({digits} > {config.max_text_digits})"
    to_analyze = [t for t in texts if t not in findings]
    results = analyzer.analyze(to_analyze) if to_analyze else []
    if len(results) != len(to_analyze):  # never let a short answer leave texts unscrubbed
        return {t: "scrub failed: the analyzer lost texts" for t in texts}
    findings.update(zip(to_analyze, results))
    return findings


# --- where a call's texts are ---------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A span of a document that may be changed: a whole text, or one JSON value with the keys around it."""

    start: int
    end: int
    path: tuple[str, ...] = ()  # a JSON value's key and those above it, normalized: ("passengers", "first_name")
    siblings: frozenset[str] = frozenset()  # the other keys of its object, normalized
    tool_name: bool = False  # the name of a tool: a program's identifier, changed only for a secret or a listed value


# fn(document, pieces) -> the pieces scrubbed. A plain text is one piece of its own document. A JSON value is
# analyzed as one document of `key: value` lines, so each key gives its value context ("password: hunter2") and
# a tool result is one analysis, not one per field; only the values (the pieces) are ever changed.
TextFn = Callable[[str, list[Piece]], list[str]]


def _by_key(piece: Piece, document: str, config: ScrubConfig) -> list[Finding]:
    """The whole value, when the key it is under says what it is (`first_name`, `user_id`, `dob`) or it is the
    `name` of a record about a person: whatever the detectors made of it."""
    if not piece.path or piece.end <= piece.start:
        return []
    kind = next((k for key in reversed(piece.path) for k, keys in config.personal_keys.items() if key in keys), None)
    if kind is None and piece.path[-1] == "name" and (set(piece.path) | piece.siblings) & set(config.person_records):
        kind = "PERSON"
    return [(kind, 0, piece.end - piece.start, 1.0, "PersonalKeyRecognizer")] if kind else []


def _normalized(key: str) -> str:
    """`firstName`, `First-Name`, `first_name` -> "first_name"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|[-.\s]+", "_", key).lower()


def _verified(clean: list[dict], config: ScrubConfig) -> tuple[list[dict], list[tuple[dict, str]]]:
    """The scrubbed calls in which the verifier finds nothing, and the others with the reason (each distinct text
    is checked once)."""
    from pipeline.recognizers import Verifier

    verifier = Verifier(config.deny_lists, config.patterns)
    allowed = re.compile("|".join(f"(?:{p})" for p in config.allow)) if config.allow else None
    seen: dict[str, list[str]] = {}

    def left_in(text: str) -> list[str]:
        if text not in seen:
            spans = [m.span() for m in allowed.finditer(text)] if allowed else []
            seen[text] = sorted({
                kind for kind, start, end in verifier.findings(text)
                if not any(a <= start and end <= b for a, b in spans) and not _PLACEHOLDER.fullmatch(text[start:end])
            })
        return seen[text]

    passed, failed = [], []
    for call in clean:
        kinds = sorted({kind for text in call_texts(call) for kind in left_in(text)})
        if kinds:
            failed.append((call, f"scrub verification: {', '.join(kinds)} still found after scrubbing"))
        else:
            passed.append(call)
    return passed, failed


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= start and end <= e for s, e in spans)


_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_DATE_OR_TIME = re.compile(
    rf"\b(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}(?:[T ]{_TIME}(?:Z|[+-]\d{{2}}:?\d{{2}})?)?|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|{_TIME}"
    rf"|(?i:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?"
    r"|(?:mon|tues|wednes|thurs|fri|satur|sun)day))\b"
)


def _conversation(call: dict, sessions: Counter, config: ScrubConfig) -> tuple[str, Any]:
    """Whose found values a call is scrubbed of: its session's, where the session is a conversation (at most
    `conversation_calls` calls; a client id logged as the session of all its traffic is not), else its own."""
    if config.scope == "session" or (not pd.isna(call["session_id"]) and sessions[call["session_id"]] <= config.conversation_calls):
        return _scope(call, replace(config, scope="session"))
    return ("call", call["call_id"])


def _scope(call: dict, config: ScrubConfig) -> tuple[str, Any]:
    """What placeholders and found values are shared by: the call, or its session."""
    if config.scope == "session" and not pd.isna(call["session_id"]):
        return ("session", call["session_id"])
    return ("call", call["call_id"])


def _texts_or_reason(call: dict) -> list[str] | str:
    try:
        return call_texts(call)
    except Exception as error:  # a call whose texts cannot even be found is quarantined, not the whole step
        return f"scrub failed: {type(error).__name__}: {str(error)[:120]}"


def call_texts(call: dict) -> list[str]:
    """Every document of a call as the analyzer reads it, in order, repeats included."""
    texts: list[str] = []

    def collect(document: str, pieces: list[Piece]) -> list[str]:
        texts.append(document)
        return [document[piece.start : piece.end] for piece in pieces]

    _map_call(call, collect)
    return texts


def _map_call(call: dict, fn: TextFn) -> dict:
    """The call with every text it carries passed through `fn`: messages (their names, tool-call ids and function
    names too), tool definitions, the reply, tool-call arguments, JSON tool results (values, and keys that are not
    plain identifiers: the JSON stays valid), and the model, finish reason, workload and source file."""
    out = {key: call[key] for key in SCHEMAS["clean_calls"] if key in call}
    messages = json.loads(call["messages"])
    for message in messages:
        if message.get("content"):
            message["content"] = _map_text_or_json(message["content"], fn)
        if isinstance(message.get("name"), str):
            message["name"] = _map_text(message["name"], fn)
        if isinstance(message.get("tool_call_id"), str):
            message["tool_call_id"] = _map_id(message["tool_call_id"], fn)
        for tool_call in message.get("tool_calls") or []:
            if isinstance(tool_call.get("id"), str):
                tool_call["id"] = _map_id(tool_call["id"], fn)
            function = tool_call["function"]
            function["name"] = _map_tool_name(function["name"], fn)
            function["arguments"] = _map_arguments(function["arguments"], fn)
    out["messages"] = json.dumps(messages, ensure_ascii=False)
    tools = json.loads(call["tools"])
    for tool in tools:
        if isinstance(tool.get("function"), dict) and isinstance(tool["function"].get("name"), str):
            # the name on its own, as in a tool call, so that both become the same placeholder
            tool["function"]["name"] = _map_tool_name(tool["function"]["name"], fn)
    # a schema's keys name parameters, not data: `user_id`'s description is not a user id
    out["tools"] = json.dumps(_map_json(tools, fn, SCHEMA_KEYS, by_key=False), ensure_ascii=False)
    if not pd.isna(call["response_text"]):
        out["response_text"] = _map_text_or_json(call["response_text"], fn)
    tool_calls = json.loads(call["response_tool_calls"])
    for tool_call in tool_calls:
        if isinstance(tool_call.get("id"), str):
            tool_call["id"] = _map_id(tool_call["id"], fn)
        tool_call["name"] = _map_tool_name(tool_call["name"], fn)
        tool_call["arguments"] = _map_arguments(tool_call["arguments"], fn)
    out["response_tool_calls"] = json.dumps(tool_calls, ensure_ascii=False)
    for key in ("workload", "model", "finish_reason"):
        if not pd.isna(call.get(key)) and call.get(key):
            out[key] = _map_text(call[key], fn)
    if not pd.isna(call.get("source_file")):
        out["source_file"] = "/".join(_map_id(part, fn) for part in call["source_file"].split("/"))
    return out


# The ids LLM APIs make for tool calls (call_…, toolu_…, fc_…, or a UUID) are random, and a log file's name is
# made by its logger (agent.jsonl.1): no person is in them, and NER takes one in ten of them for a name or a place
# ("calls.jsonl" for a location). Any other id or path part (one made up from an email) is scanned.
_GENERATED_ID = re.compile(
    r"(?:call|toolu|tool|fc|chatcmpl)[_-][A-Za-z0-9]{8,64}|[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}"
)


def _map_id(value: str, fn: TextFn) -> str:
    made_by_a_program = _GENERATED_ID.fullmatch(value) or (LOG_FILE.search(value) and re.fullmatch(r"[\w.-]+", value))
    return value if made_by_a_program else _map_text(value, fn)


def _map_arguments(arguments: Any, fn: TextFn) -> Any:
    """Tool-call arguments as logged: a JSON string, parsed JSON, or a bare value."""
    if isinstance(arguments, str):
        return _map_text_or_json(arguments, fn)
    if isinstance(arguments, (dict, list)):
        return _map_json(arguments, fn)
    if isinstance(arguments, (int, float)) and not isinstance(arguments, bool) and _long_number(arguments):
        mapped = _map_text(str(arguments), fn)
        return arguments if mapped == str(arguments) else mapped
    return arguments


def _map_text(text: str, fn: TextFn) -> str:
    text = _visible(text)
    return fn(text, [Piece(0, len(text))])[0]


# Characters that show as nothing: a key split by one (sk-pro\u200bj-…) matches no pattern. They are dropped from
# every text step 2 writes.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]")


def _visible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def _map_tool_name(name: str, fn: TextFn) -> str:
    return fn(name, [Piece(0, len(name), tool_name=True)])[0]


def _map_text_or_json(text: str, fn: TextFn) -> str:
    """A JSON object or array keeps its structure (re-serialized only when something in it changed)."""
    if text[:1] in "{[":
        try:
            value = json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError):  # not JSON, a repeated key, too deep, a number too long: text then
            return _map_text(text, fn)
        mapped = _map_json(value, fn)
        return text if mapped == value else json.dumps(mapped, ensure_ascii=False)
    return _map_text(text, fn)


def _map_json(value: Any, fn: TextFn, keep: frozenset[str] = frozenset(), by_key: bool = True) -> Any:
    """Every string value and long number mapped, but the words of a schema (strings under the keys in `keep`);
    keys that are not plain identifiers are mapped too, each on its own. With `by_key`, each value's piece says
    which keys it is under."""
    copy = json.loads(json.dumps(value))  # to write into, leaving the caller's value as it was
    leaves: list[_Leaf] = []
    _find_leaves(copy, keep, "", (), leaves)
    lines, pieces, offset = [], [], 0
    for leaf in leaves:
        start = offset + len(leaf.label)
        keys = (leaf.path, leaf.siblings) if by_key else ((), frozenset())
        pieces.append(Piece(start, start + len(leaf.text), *keys))
        lines.append(leaf.label + leaf.text)
        offset = start + len(leaf.text) + len(_LEAF_SEPARATOR)
    for leaf, mapped in zip(leaves, fn(_LEAF_SEPARATOR.join(lines), pieces) if leaves else []):
        if mapped != leaf.text:
            leaf.container[leaf.key] = mapped  # a number found to be personal becomes its placeholder string
    return _map_keys(copy, fn)


_LEAF_SEPARATOR = "\n\n"  # a blank line: address and name patterns do not run on across it


@dataclass
class _Leaf:
    container: Any
    key: Any  # or index
    label: str
    text: str
    path: tuple[str, ...]
    siblings: frozenset[str]


def _find_leaves(value: Any, keep: frozenset[str], label: str, path: tuple[str, ...], leaves: list[_Leaf]) -> None:
    in_object = isinstance(value, dict)
    items = value.items() if in_object else enumerate(value) if isinstance(value, list) else []
    keys = frozenset(_normalized(k) for k in value) if in_object else frozenset()
    for key, item in items:
        schema_word = in_object and key in keep
        item_label = _label(key) if in_object else label
        item_path = path + (_normalized(key),) if in_object else path
        siblings = keys - {item_path[-1]} if in_object else frozenset()
        if isinstance(item, str) and item and not schema_word:
            if (visible := _visible(item)) != item:
                value[key] = item = visible
            leaves.append(_Leaf(value, key, item_label, item, item_path, siblings))
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and _long_number(item):
            leaves.append(_Leaf(value, key, item_label, str(item), item_path, siblings))
        elif isinstance(item, dict) or (isinstance(item, list) and not schema_word):
            _find_leaves(item, keep, item_label, item_path, leaves)  # a property called `name` is scanned too


def _long_number(number: int | float) -> bool:
    """A number long enough to be a card, a phone or an account (a float included: 4539068144173050.0)."""
    return math.isfinite(number) and len(str(int(abs(number)))) >= MIN_DIGITS_TO_SCAN


# Keys such as `order_id` or `dateOfBirth` name a field; anything else (an email, a name, a long number) may be data.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _map_keys(value: Any, fn: TextFn) -> Any:
    if isinstance(value, list):
        return [_map_keys(item, fn) for item in value]
    if not isinstance(value, dict):
        return value
    mapped = {}
    for key, item in value.items():
        plain = _IDENTIFIER.fullmatch(key) and not re.search(r"\d{%d}" % MIN_DIGITS_TO_SCAN, key)
        mapped[key if plain else _map_text(key, fn)] = _map_keys(item, fn)
    return mapped


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """JSON with a repeated key is read as text: a parser keeps one of the values, and the other must not hide."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("repeated key")
    return dict(pairs)


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


def _pseudonymous_id(value: Any, key: bytes) -> str | None:
    """Session ids can be user names or emails: keep the grouping, not the value. Keyed, so that nobody without the
    deployment's key can test a guess (an unkeyed hash of a known email is one computation away)."""
    return None if pd.isna(value) else "s-" + hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:16]


def session_key(folder: Path) -> bytes:
    """The deployment's key for session ids: made on first use in `folder`, readable by its owner only."""
    path = folder / "session.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another run made it first
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(32))
    return path.read_bytes()


def _quarantine_row(call: dict, reason: str) -> dict:
    # no excerpt: the text is raw, and nothing raw may leave this step
    return {"called_at": call["called_at"], "step": "scrub", "source_file": call["source_file"],
            "source_line": call["source_line"], "reason": reason, "excerpt": ""}


def _totals(audit: list[dict], key: str) -> dict[str, int]:
    totals: Counter = Counter()
    for row in audit:
        totals[row[key]] += row["count"]
    return dict(totals.most_common())
