"""Step 2 on long, personal agent logs: the share of planted personal values that survive scrubbing.

    .venv/bin/python bench/pii_long.py [--conversations 120] [--processes 2] [--no-rampart] [--spacy-model NAME]

The logs are `demo.long_logs`' airline-agent transcripts: names from ten countries, user ids made from them,
customers who give their name in lower case, replies that restate the passenger list, JSON tool results with the
user's profile and saved passengers, and hand-over summaries that repeat the user id and name. Every personal value
the raw logs hold is read back from their own `get_user_details` results (names, user ids, e-mails, dates of birth,
street addresses, cities, postal codes), then searched for, case-insensitively and as a whole word, in every text of
every scrubbed call (JSON inside JSON decoded). Target: at most 1% of distinct values survive.

What must not be scrubbed is counted too: the reservation ids, flight numbers, airports, payment ids, flight dates
and amounts paid the agent has to copy into its tool calls and replies, read from the `get_reservation_details`
results: the share of their occurrences in the raw calls that are left whole in the scrubbed ones; and the airline's
policy, which holds nobody's data: the share of calls whose system prompt is left whole.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""  # before Presidio is imported: no public-suffix download
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import regex  # noqa: E402

from demo.long_logs import write_long_logs  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.scrub import open_analyzer, scrub_calls  # noqa: E402
from pipeline.settings import ScrubConfig, Settings  # noqa: E402

TARGET = 0.01


def planted(transcripts: Path) -> dict[str, set[str]]:
    """Kind -> the distinct personal values in the logs' user profiles."""
    values: dict[str, set[str]] = defaultdict(set)
    for line in transcripts.read_text().splitlines():
        for message in json.loads(line)["messages"]:
            if message["role"] != "tool" or '"saved_passengers"' not in message["content"]:
                continue
            user = json.loads(message["content"])
            people = [user["name"]] + user["saved_passengers"]
            values["first name"] |= {p["first_name"] for p in people}
            values["last name"] |= {p["last_name"] for p in people}
            values["user id"].add(user["user_id"])
            values["e-mail"].add(user["email"])
            values["date of birth"] |= {user["dob"]} | {p["dob"] for p in user["saved_passengers"]}
            values["street address"].add(user["address"]["address1"])
            values["city"].add(user["address"]["city"])
            values["postal code"].add(user["address"]["zip"])
    return values


def operational(transcripts: Path) -> dict[str, set[str]]:
    """Kind -> the distinct values the agent works with, which are nobody's personal data."""
    values: dict[str, set[str]] = defaultdict(set)
    for line in transcripts.read_text().splitlines():
        for message in json.loads(line)["messages"]:
            if message["role"] != "tool" or '"payment_history"' not in message["content"]:
                continue
            reservation = json.loads(message["content"])
            values["reservation id"].add(reservation["reservation_id"])
            values["flight number"] |= {f["flight_number"] for f in reservation["flights"]}
            values["airport"] |= {reservation["origin"], reservation["destination"]}
            values["payment id"] |= {p["payment_id"] for p in reservation["payment_history"]}
            values["flight date"] |= {f["date"] for f in reservation["flights"]}
            values["amount paid"] |= {str(p["amount"]) for p in reservation["payment_history"]}
    return values


def _whole(value: str) -> regex.Pattern:
    return regex.compile(rf"(?<!\w)(?i:{regex.escape(value)})(?!\w)")


def present(value: str, haystack: str) -> bool:
    return _whole(value).search(haystack) is not None


def occurrences(value: str, haystack: str) -> int:
    return len(_whole(value).findall(haystack))


def texts_of(value) -> list[str]:
    """Every string in a value, JSON held in strings decoded too."""
    if isinstance(value, str):
        if value[:1] in "{[":
            try:
                return texts_of(json.loads(value))
            except ValueError:
                pass
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in texts_of(k) + texts_of(v)]
    if isinstance(value, list):
        return [t for item in value for t in texts_of(item)]
    return [str(value)] if value is not None else []


def system_prompt(call: dict) -> str:
    return next(m["content"] for m in json.loads(call["messages"]) if m["role"] == "system")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=120)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--spacy-model", default=ScrubConfig.spacy_model)
    parser.add_argument("--no-rampart", action="store_true")
    parser.add_argument("--show", type=int, default=10, help="print up to N surviving values with their context")
    args = parser.parse_args()
    config = ScrubConfig(processes=args.processes, spacy_model=args.spacy_model, rampart=not args.no_rampart)
    with tempfile.TemporaryDirectory() as home:
        transcripts = write_long_logs(Path(home) / "logs", args.conversations)
        calls = LogFolder.of(Settings(home=Path(home))).collect().calls
        values, work = planted(transcripts), operational(transcripts)
    with open_analyzer(config) as analyzer:
        started = time.perf_counter()
        result = scrub_calls(calls, analyzer, config)
        seconds = time.perf_counter() - started
    assert result.stats.reconciles(), result.stats
    haystack = "\n".join(t for call in result.clean_calls.to_dict("records") for t in texts_of(call))
    raw_haystack = "\n".join(t for call in calls.to_dict("records") for t in texts_of(call))
    print(f"{len(calls)} calls of {args.conversations} conversations, {result.stats.distinct_texts} distinct texts, "
          f"scrubbed in {seconds:.0f} s ({config.spacy_model}{'' if args.no_rampart else ' + Rampart'}, "
          f"{args.processes} processes); {result.stats.quarantined} calls quarantined")
    print(f"\n{'planted value':<16}{'distinct':>9}{'survive':>9}{'share':>8}")
    survivors: list[tuple[str, str]] = []
    for kind, found in values.items():
        left = [v for v in sorted(found) if present(v, haystack)]
        survivors += [(kind, v) for v in left]
        print(f"{kind:<16}{len(found):>9}{len(left):>9}{len(left) / len(found):>8.1%}")
    total = sum(len(v) for v in values.values())
    share = len(survivors) / total
    print(f"{'all':<16}{total:>9}{len(survivors):>9}{share:>8.1%}   target ≤{TARGET:.0%}: {'ok' if share <= TARGET else 'MISSED'}")
    print(f"\n{'working value':<16}{'distinct':>9}{'in raw':>9}{'kept':>9}{'share':>8}")
    for kind, found in work.items():
        raw = sum(occurrences(v, raw_haystack) for v in found)
        kept = sum(occurrences(v, haystack) for v in found)
        print(f"{kind:<16}{len(found):>9}{raw:>9}{kept:>9}{kept / raw:>8.1%}")
    raw_policy = {call["call_id"]: system_prompt(call) for call in calls.to_dict("records")}
    whole = sum(system_prompt(call) == raw_policy[call["call_id"]] for call in result.clean_calls.to_dict("records"))
    print(f"{'system prompt':<16}{'':>9}{len(result.clean_calls):>9}{whole:>9}{whole / len(result.clean_calls):>8.1%}")
    for kind, value in survivors[: args.show]:
        at = regex.search(rf"(?<!\w)(?i:{regex.escape(value)})(?!\w)", haystack).start()
        print(f"  {kind}: {value!r} in …{haystack[max(0, at - 60): at + len(value) + 40]!r}…")


if __name__ == "__main__":
    main()
