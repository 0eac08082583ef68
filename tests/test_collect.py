import gzip
import json
import os
from datetime import date, datetime
from pathlib import Path

import pytest

import pipeline.collect as collect
from pipeline.collect import assemble, find_log_files, read_log_file

LIMIT = 10_000


def record(user: str, reply: str, timestamp: int = 1762300000) -> dict:
    return {
        "timestamp": timestamp,
        "workload_id": "intent",
        "request": {"model": "gpt-4o", "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": user}]},
        "response": {"model": "gpt-4o", "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]},
    }


def write_lines(path: Path, lines: list) -> Path:
    raw = b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def collect_all(folder: Path, cache: Path, **window):
    files = find_log_files(folder, cache).files
    return assemble(files, [read_log_file(f, cache, LIMIT)[0] for f in files], **window)


def test_bad_lines_are_quarantined_with_reason_and_the_rest_collected(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(
        logs / "mixed.jsonl",
        [
            record("Where is my parcel?", "order_status"),
            b'{"timestamp": 1762300000, "request": {"model"',
            {"event": "heartbeat"},
            {"timestamp": 1762300100, "request": record("x", "y")["request"]},
            b'{"note": "caf\xe9"}',
            b"   ",
            record("A" * LIMIT, "complaint"),
            record("I want my money back", "refund_request"),
        ],
    )

    collection = collect_all(logs, tmp_path / "cache")

    stats = collection.stats
    assert (stats.lines_read, stats.blank_lines) == (8, 1)
    assert (stats.records, stats.calls_kept, stats.duplicates, stats.quarantined) == (7, 2, 0, 5)
    assert stats.reconciles()
    quarantine = collection.quarantine.set_index("source_line")
    assert quarantine.loc[2, "reason"].startswith("malformed JSON")
    assert quarantine.loc[3, "reason"] == "unknown format (keys: event)"
    assert quarantine.loc[4, "reason"] == "call without a response"
    assert quarantine.loc[5, "reason"] == "bad encoding: not UTF-8 at byte 13"
    assert quarantine.loc[7, "reason"].startswith("line over size limit")
    assert set(quarantine["source_file"]) == {"mixed.jsonl"} and set(quarantine["step"]) == {"collect"}
    assert quarantine["excerpt"].str.len().max() <= collect.EXCERPT_CHARS
    assert stats.quarantine_reasons["malformed JSON"] == 1
    assert list(collection.calls["response_text"]) == ["order_status", "refund_request"]


def test_a_bad_line_is_placed_on_its_own_time_where_it_states_one_else_on_its_files(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    path = write_lines(logs / "a.jsonl", [record("hi", "x", timestamp=1762300000), b"not json", b'{"timestamp": 1762386400, oops'])
    os.utime(path, (1762000000, 1762000000))
    collection = collect_all(logs, tmp_path / "cache")
    assert list(collection.quarantine["called_at"]) == [datetime(2025, 11, 1, 12, 26, 40), datetime(2025, 11, 5, 23, 46, 40)]


def test_exact_duplicates_collapse_with_their_count_within_a_day(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    same = record("Where is my parcel?", "order_status")
    next_day = record("Where is my parcel?", "order_status", timestamp=1762300000 + 86400)
    write_lines(logs / "a.jsonl", [same, same, next_day])
    write_lines(logs / "b.jsonl.gz", [same])

    collection = collect_all(logs, tmp_path / "cache")

    assert list(collection.calls["occurrences"]) == [3, 1]
    assert collection.stats.duplicates == 2 and collection.stats.reconciles()
    assert collection.calls["call_id"].is_unique


def test_gzip_logs_are_read_and_a_truncated_one_keeps_what_came_before(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "whole.jsonl.gz", [record(f"message {i}", "x") for i in range(50)])
    cut = write_lines(logs / "cut.jsonl.gz", [record(f"message {i}", "y") for i in range(50)])
    cut.write_bytes(cut.read_bytes()[:-40])

    collection = collect_all(logs, tmp_path / "cache")

    by_file = collection.calls.groupby("source_file").size().to_dict()
    assert by_file["whole.jsonl.gz"] == 50 and 0 < by_file["cut.jsonl.gz"] < 50
    [reason] = collection.quarantine["reason"]
    assert reason.startswith("unreadable file after line")


def test_a_file_already_read_is_not_parsed_again_and_new_files_are(tmp_path, monkeypatch):
    logs, cache = tmp_path / "logs", tmp_path / "cache"
    logs.mkdir()
    write_lines(logs / "day1.jsonl", [record("first", "x")])
    [first] = find_log_files(logs, cache).files
    assert read_log_file(first, cache, LIMIT)[1] is True

    parsed = []
    real_parse = collect.parse_log_file
    monkeypatch.setattr(collect, "parse_log_file", lambda path, limit: parsed.append(path.name) or real_parse(path, limit))
    write_lines(logs / "day2.jsonl", [record("second", "y", timestamp=1762300000 + 86400)])
    (logs / "copy-of-day1.jsonl").write_bytes((logs / "day1.jsonl").read_bytes())

    collection = collect_all(logs, cache)

    assert parsed == ["day2.jsonl"]  # the copy has day1's content hash: read once, from the cache
    assert len(collection.calls) == 2 and collection.stats.duplicates == 0
    assert find_log_files(logs, cache).copies == ["day1.jsonl"]


def test_changed_file_is_read_again(tmp_path):
    logs, cache = tmp_path / "logs", tmp_path / "cache"
    logs.mkdir()
    path = write_lines(logs / "a.jsonl", [record("first", "x")])
    assert len(collect_all(logs, cache).calls) == 1
    write_lines(path, [record("first", "x"), record("second", "y")])
    os.utime(path, ns=(1, 1))  # a different mtime as well as a different size
    assert len(collect_all(logs, cache).calls) == 2


def test_window_keeps_only_its_days_and_counts_reconcile_per_window(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "a.jsonl", [record("a", "x", 1762300000), record("b", "y", 1762300000 + 86400),
                                   b'{"timestamp": 1762386400, oops'])

    collection = collect_all(logs, tmp_path / "cache", start=datetime(2025, 11, 5), end=datetime(2025, 11, 6))

    assert list(collection.calls["response_text"]) == ["y"]
    assert collection.stats.records == 2 and collection.stats.quarantined == 1 and collection.stats.reconciles()


def test_calls_before_the_first_partition_day_are_quarantined_not_lost(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "a.jsonl", [record("old", "x", 1262300000), record("new", "y")])

    collection = collect_all(logs, tmp_path / "cache", first_day=date(2024, 1, 1))

    assert list(collection.calls["response_text"]) == ["y"]
    [row] = collection.quarantine.to_dict("records")
    assert row["reason"] == "call time 2009-12-31 before the first partition day 2024-01-01"
    assert row["called_at"] == datetime(2024, 1, 1)


def test_transcript_without_a_time_is_placed_at_its_file_time(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    path = write_lines(logs / "t.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}])
    os.utime(path, (1762300000, 1762300000))

    [call] = collect_all(logs, tmp_path / "cache").calls.to_dict("records")

    assert call["time_from_file"] and call["called_at"] == datetime(2025, 11, 4, 23, 46, 40)


@pytest.mark.parametrize("name", ["notes.txt", "data.json", "archive.jsonl.zip"])
def test_only_jsonl_and_jsonl_gz_files_are_logs(tmp_path, name):
    (tmp_path / name).write_text("{}\n")
    (tmp_path / "sub").mkdir()
    write_lines(tmp_path / "sub" / "calls.jsonl", [record("hi", "x")])
    assert [f.name for f in find_log_files(tmp_path, tmp_path / ".cache").files] == ["sub/calls.jsonl"]
