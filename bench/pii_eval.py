"""PII scrubbing quality on Presidio's synthetic set: recall per entity type, precision per scrubbed type.

    .venv/bin/python bench/pii_eval.py [--limit N] [--data PATH] [--spacy-model NAME] [--no-rampart] [--compare]

`--compare` scores each combination of detectors (spaCy's small or medium model, with or without Rampart) and
prints one line per combination: how the default of `ScrubConfig` was chosen.

Data: `synth_dev_500.json` under ../shared/data/presidio_synth_pii (or SLM_SHARED_DATA), 500 texts with gold spans
of 17 types. The script skips, saying why, when it is absent.

Each text is scrubbed by `scrub()`, the pipeline's own scrubbing (`pipeline.scrub.scrub_texts`), which replaces every
detected span with `<TYPE_n>`; the scrubbed text is then
aligned back to the original (each placeholder stands for the shortest run of text that makes the rest match), so
any scrubber with that effect can be measured by swapping `scrub()` alone.

Recall, per gold type: a gold value counts as found when no trace of it is left in the scrubbed text.
- A trace is an identifying token of the value that survives at its own position: a run of letters or digits
  (`\\w+`) of two or more characters that is not an English stop word nor an address unit word ("Apt", "Suite",
  "Box"), and whose every character is carried over, unchanged and in one piece, into the scrubbed text. For a
  multi-line address every line's tokens count; "Apt. 864" leaks "864", not "Apt".
- strict: every `\\w+` token of the value is gone, stop words and single letters included (the "J" of
  "Szabina J Gelencsér", the "Apt" of "Apt. 864").
- loose: at least one identifying token is gone, i.e. the value was at least partly scrubbed.
Precision, per scrubbed type and overall: of the non-space characters the scrubber removed, the share that lies
inside some gold span of any type (a name scrubbed as LOCATION is still a name removed).
Gold types whose mapped type the scrubber does not remove (no recognizer, or out of scope on purpose) are
reported apart; their spans still count as gold for precision.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import regex

os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""  # before Presidio is imported: no public-suffix download
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacy.lang.en.stop_words import STOP_WORDS  # noqa: E402

from pipeline.recognizers import ENTITIES  # noqa: E402
from pipeline.scrub import LocalAnalyzer, scrub_texts  # noqa: E402
from pipeline.settings import ScrubConfig  # noqa: E402

SHARED_DATA = Path(os.environ.get("SLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATASET = SHARED_DATA / "presidio_synth_pii" / "synth_dev_500.json"

# The data set's types as the scrubber names them; None where no Presidio entity exists.
DATASET_TO_PRESIDIO: dict[str, str | None] = {
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "IBAN_CODE": "IBAN_CODE",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "ZIP_CODE": "STREET_ADDRESS",  # a postal code is the tail of an address
    "GPE": "LOCATION",
    "NRP": "NRP",
    "DATE_TIME": "DATE_TIME",
    "ORGANIZATION": "ORGANIZATION",
    "DOMAIN_NAME": "URL",
    "TITLE": None,
    "AGE": None,
}
TARGETS = {
    "PERSON": 0.95, "EMAIL_ADDRESS": 0.95, "PHONE_NUMBER": 0.95, "CREDIT_CARD": 0.95, "US_SSN": 0.95,
    "IP_ADDRESS": 0.95, "IBAN_CODE": 0.95, "STREET_ADDRESS": 0.90,
}
PRECISION_TARGET = 0.9
NON_IDENTIFYING = STOP_WORDS | {"apt", "apartment", "suite", "ste", "unit", "box", "floor", "room", "flat"}
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)(?:_\d+)?>")  # <PERSON_2> stands for a PERSON


@cache
def _analyzer(spacy_model: str, rampart: bool) -> LocalAnalyzer:
    return LocalAnalyzer(ScrubConfig(processes=0, spacy_model=spacy_model, rampart=rampart))


def scrub(texts: list[str], spacy_model: str = ScrubConfig.spacy_model, rampart: bool = ScrubConfig.rampart) -> list[str]:
    """Each text as the pipeline's scrub step leaves it: every detected span replaced by `<TYPE_n>`."""
    scrubbed = scrub_texts(texts, _analyzer(spacy_model, rampart))
    if None in scrubbed:
        raise RuntimeError("the scrubber could not scrub every text")
    return scrubbed


@dataclass
class Alignment:
    """Which characters of the original survive in the scrubbed text, and what replaced the rest."""

    blocks: list[tuple[int, int]]  # surviving [start, end) ranges of the original
    removed: list[tuple[int, int, str]]  # removed [start, end) ranges with the placeholder type that replaced them


def align(original: str, scrubbed: str) -> Alignment:
    """Match the scrubbed text back onto the original, each placeholder standing for the shortest run it can."""
    parts = PLACEHOLDER.split(scrubbed)  # literal, type, literal, type, ..., literal
    pattern = "".join(regex.escape(part) if i % 2 == 0 else "(.+?)" for i, part in enumerate(parts))
    match = regex.fullmatch(pattern, original, flags=regex.DOTALL, timeout=10)
    if match is None:
        raise ValueError(f"scrubbed text is not the original with spans replaced by <TYPE>: {scrubbed[:80]!r}")
    blocks, removed, previous_end = [], [], 0
    for group, kind in enumerate(parts[1::2], start=1):
        blocks.append((previous_end, match.start(group)))
        removed.append((match.start(group), match.end(group), kind))
        previous_end = match.end(group)
    blocks.append((previous_end, len(original)))
    return Alignment(blocks, removed)


def survives(alignment: Alignment, start: int, end: int) -> bool:
    return any(b0 <= start and end <= b1 for b0, b1 in alignment.blocks)


def tokens(value: str, offset: int, identifying: bool) -> list[tuple[int, int]]:
    return [
        (offset + m.start(), offset + m.end())
        for m in re.finditer(r"\w+", value)
        if not identifying or (len(m.group()) >= 2 and m.group().lower() not in NON_IDENTIFYING)
    ]


@dataclass
class Judgement:
    found: bool
    strict: bool
    loose: bool


def judge(alignment: Alignment, value: str, start: int) -> Judgement:
    identifying = [not survives(alignment, *t) for t in tokens(value, start, identifying=True)]
    every = [not survives(alignment, *t) for t in tokens(value, start, identifying=False)]
    return Judgement(found=all(identifying), strict=all(every), loose=any(identifying) or not identifying)


def evaluate(records: list[dict], scrubbed: list[str]) -> tuple[dict, dict]:
    recall: dict[str, list[Judgement]] = defaultdict(list)
    precision: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # type -> [removed inside gold, removed]
    for record, clean in zip(records, scrubbed):
        text = record["full_text"]
        alignment = align(text, clean)
        for span in record["spans"]:
            recall[span["entity_type"]].append(judge(alignment, span["entity_value"], span["start_position"]))
        gold = [False] * len(text)
        for span in record["spans"]:
            gold[span["start_position"]:span["end_position"]] = [True] * (span["end_position"] - span["start_position"])
        for a0, a1, kind in alignment.removed:
            for i in range(a0, a1):
                if not text[i].isspace():
                    precision[kind][0] += gold[i]
                    precision[kind][1] += 1
    return recall, precision


def _share(hits: int, total: int) -> str:
    return f"{hits / total:.3f}" if total else "  -  "


def report(recall: dict[str, list[Judgement]], precision: dict[str, list[int]], seconds: float, texts: int) -> None:
    scrubbed_types = set(ENTITIES)
    in_scope = sorted((t for t in recall if DATASET_TO_PRESIDIO[t] in scrubbed_types), key=lambda t: -len(recall[t]))
    out_of_scope = sorted((t for t in recall if t not in in_scope), key=lambda t: -len(recall[t]))
    print(f"{'gold type':<19}{'as':<16}{'gold':>5}{'recall':>8}{'strict':>8}{'loose':>8}{'target':>8}{'precision':>11}")
    for kind in in_scope:
        judged, mapped = recall[kind], DATASET_TO_PRESIDIO[kind]
        target = TARGETS.get(kind)
        found = sum(j.found for j in judged)
        flag = "" if target is None else ("  ok" if found / len(judged) >= target else "  MISSED")
        print(f"{kind:<19}{mapped:<16}{len(judged):>5}{_share(found, len(judged)):>8}"
              f"{_share(sum(j.strict for j in judged), len(judged)):>8}{_share(sum(j.loose for j in judged), len(judged)):>8}"
              f"{'' if target is None else f'{target:.2f}':>8}{_share(*precision.get(mapped, [0, 0])):>11}{flag}")
    print("\nnot removed by the scrubber (no recognizer, or out of scope on purpose); recall shown for information:")
    for kind in out_of_scope:
        judged = recall[kind]
        print(f"{kind:<19}{DATASET_TO_PRESIDIO[kind] or '(none)':<16}{len(judged):>5}"
              f"{_share(sum(j.found for j in judged), len(judged)):>8}")
    others = sorted(k for k in precision if k not in {DATASET_TO_PRESIDIO[t] for t in in_scope})
    if others:
        print("\nprecision of scrubbed types with no gold type of their own:")
        for kind in others:
            print(f"{kind:<35}{_share(*precision[kind]):>8}  ({precision[kind][1]} characters)")
    inside, removed = (sum(p[i] for p in precision.values()) for i in (0, 1))
    overall = inside / removed if removed else 1.0
    print(f"\noverall precision {overall:.3f} ({inside}/{removed} removed characters inside gold spans)"
          f"  target {PRECISION_TARGET:.2f}  {'ok' if overall >= PRECISION_TARGET else 'MISSED'}")
    print(f"scrubbed {texts} texts in {seconds:.2f} s ({texts / seconds:.1f} texts/s, analyzer already built)")


def compare(records: list[dict]) -> None:
    """One line per combination of detectors: PERSON and address recall, overall precision, speed."""
    print(f"{'detectors':<34}{'PERSON':>8}{'address':>9}{'others':>8}{'precision':>11}{'texts/s':>9}")
    for spacy_model in ("en_core_web_sm", "en_core_web_md"):
        for rampart in (False, True):
            _analyzer(spacy_model, rampart)
            started = time.perf_counter()
            scrubbed = scrub([record["full_text"] for record in records], spacy_model, rampart)
            seconds = time.perf_counter() - started
            recall, precision = evaluate(records, scrubbed)
            share = {kind: sum(j.found for j in judged) / len(judged) for kind, judged in recall.items()}
            others = min(share[k] for k in TARGETS if k in share and k not in {"PERSON", "STREET_ADDRESS"})
            inside, removed = (sum(p[i] for p in precision.values()) for i in (0, 1))
            name = spacy_model + (" + Rampart" if rampart else "")
            print(f"{name:<34}{share['PERSON']:>8.3f}{share['STREET_ADDRESS']:>9.3f}{others:>8.3f}"
                  f"{inside / removed:>11.3f}{len(records) / seconds:>9.0f}")
    print("(others: the lowest recall of the other core types with a target)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N records")
    parser.add_argument("--data", type=Path, default=DATASET)
    parser.add_argument("--spacy-model", default=ScrubConfig.spacy_model)
    parser.add_argument("--no-rampart", action="store_true", help="spaCy and the pattern recognizers only")
    parser.add_argument("--compare", action="store_true", help="one line per combination of detectors")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (set SLM_SHARED_DATA to the folder holding presidio_synth_pii/)")
        return
    records = json.loads(args.data.read_text())[: args.limit]
    if args.compare:
        compare(records)
        return
    started = time.perf_counter()
    _analyzer(args.spacy_model, not args.no_rampart)
    print(f"analyzer built in {time.perf_counter() - started:.1f} s ({args.spacy_model}"
          f"{'' if args.no_rampart else ' + Rampart'})")
    started = time.perf_counter()
    scrubbed = scrub([record["full_text"] for record in records], args.spacy_model, not args.no_rampart)
    seconds = time.perf_counter() - started
    recall, precision = evaluate(records, scrubbed)
    report(recall, precision, seconds, len(records))


if __name__ == "__main__":
    main()
