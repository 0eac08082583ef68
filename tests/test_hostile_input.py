"""Step 1 under hostile and messy input: one bad record never stops a run, nothing is lost, and the counts can fail."""

import json
from dataclasses import asdict
from datetime import datetime, timezone

import pytest

from pipeline.collect import FileParse, LogFile, LogFolder, assemble, parse_log_file
from pipeline.settings import Settings
from pipeline.warehouse import open_warehouse
from test_collect import record, write_lines


def folder_of(tmp_path) -> LogFolder:
    (tmp_path / "logs").mkdir(exist_ok=True)
    return LogFolder.of(Settings(home=tmp_path / "home", logs_dir=tmp_path / "logs"))


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


HOSTILE = {
    "JSON nested 10,000 levels": '{"timestamp": 1762300000, "request": ' + deep(10_000) + "}",
    "tool arguments 5,000 levels deep": json.dumps({
        "timestamp": 1762300000, "request": {"messages": [{"role": "user", "content": "x"}]},
        "response": {"choices": [{"message": {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": deep(5_000)}}]}}]},
    }),
    "a 5,000-digit integer": '{"timestamp": 1762300000, "request": {"n": ' + "9" * 5000 + "}}",
    "a timestamp of -9e10": json.dumps({**record("a", "b"), "timestamp": -9e10}),
    "a message that is a plain string": json.dumps({**record("a", "b"), "request": {"messages": ["hello"]}}),
    "choices as a string": json.dumps({**record("a", "b"), "response": {"choices": "oops"}}),
    "choices holding null": json.dumps({**record("a", "b"), "response": {"choices": [None]}}),
    "tool_calls holding a string": json.dumps({**record("a", "b"), "response": {"choices": [
        {"message": {"role": "assistant", "tool_calls": ["x"]}}]}}),
    "OpenPipe tags as a list": json.dumps({"requestedAt": 1762300000000, "reqPayload": record("a", "b")["request"],
                                           "respPayload": record("a", "b")["response"], "statusCode": 200, "tags": ["x"]}),
    "resourceSpans as a string": '{"resourceSpans": "nope"}',
    "OTel attributes as a list of numbers": '{"name": "chat", "spanId": "1", "attributes": [1]}',
    "a transcript with no assistant turn": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
}


def test_every_hostile_record_is_quarantined_with_a_reason_and_the_good_ones_are_kept(tmp_path):
    logs = folder_of(tmp_path)
    good = [record(f"question {i}", "answer") for i in range(3)]
    write_lines(logs.folder / "hostile.jsonl", [good[0], *(line.encode() for line in HOSTILE.values()), good[1]])
    write_lines(logs.folder / "fine.jsonl", [good[2]])

    collection = logs.collect()

    assert sorted(collection.calls["messages"].str.extract(r"(question \d)")[0]) == ["question 0", "question 1", "question 2"]
    reasons = collection.quarantine.sort_values("source_line")["reason"].tolist()
    assert len(reasons) == len(HOSTILE) and all(reasons), dict(zip(HOSTILE, reasons))
    assert collection.stats.records_unaccounted == 0 and collection.stats.reconciles()


def test_a_lone_surrogate_is_made_storable_and_the_call_reaches_the_warehouse(tmp_path, warehouse_url):
    logs = folder_of(tmp_path)
    (logs.folder / "a.jsonl").write_text(json.dumps(record("broken \ud800 text", "fine")) + "\n")

    calls = logs.collect().calls
    warehouse = open_warehouse(warehouse_url)
    warehouse.write("raw_calls", calls)

    [stored] = warehouse.read("raw_calls")["messages"]
    assert "broken \ufffd text" in json.loads(stored)[1]["content"]


def test_a_record_without_its_own_time_takes_its_files_time_flagged(tmp_path):
    logs = folder_of(tmp_path)
    undated = {key: value for key, value in record("no time", "x").items() if key != "timestamp"}
    path = write_lines(logs.folder / "a.jsonl", [record("dated", "x"), undated])

    calls = logs.collect().calls.set_index("source_line")
    assert not calls.loc[1, "time_from_file"] and calls.loc[2, "time_from_file"]
    assert calls.loc[2, "called_at"] == datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).replace(tzinfo=None)


def test_calls_after_the_last_partition_day_are_quarantined_not_lost(tmp_path):
    logs = folder_of(tmp_path)
    write_lines(logs.folder / "a.jsonl", [record("now", "x"), record("later", "y", timestamp=32503680000)])  # year 3000

    collection = logs.collect()

    assert list(collection.calls["response_text"]) == ["x"]
    [row] = collection.quarantine.to_dict("records")
    assert row["reason"].startswith("call time 3000-01-01 after the last partition day")
    assert row["called_at"] == datetime(2024, 1, 1)  # counted on the first day, where every outsider goes


def test_rotating_a_log_loses_nothing_and_duplicates_nothing(tmp_path):
    logs = folder_of(tmp_path)
    write_lines(logs.folder / "agent.jsonl", [record(f"old {i}", "x") for i in range(5)])
    before = logs.collect().calls

    (logs.folder / "agent.jsonl").rename(logs.folder / "agent.jsonl.1")
    write_lines(logs.folder / "agent.jsonl", [record(f"new {i}", "x") for i in range(2)])
    (logs.folder / "agent.jsonl.2.gz").write_bytes(b"")  # an older, empty rotation
    (logs.folder / "backup-agent.jsonl.1").write_bytes((logs.folder / "agent.jsonl.1").read_bytes())  # a copy

    after = logs.collect().calls

    assert len(before) == 5 and len(after) == 7 and after["occurrences"].sum() == 7
    assert set(before["call_id"]) <= set(after["call_id"])


def test_a_link_out_of_the_logs_folder_is_not_followed_and_is_reported(tmp_path):
    logs = folder_of(tmp_path)
    outside = write_lines(tmp_path / "secret.jsonl", [record("sk-proj-SECRETSECRETSECRET", "x")])
    (logs.folder / "link.jsonl").symlink_to(outside)
    write_lines(logs.folder / "own.jsonl", [record("mine", "x")])

    collection = logs.collect()

    assert len(collection.calls) == 1 and collection.stats.links_outside == ["link.jsonl"]


def test_an_openpipe_failure_logged_with_a_text_status_is_quarantined():
    from pipeline.formats import Quarantined, parse_record

    failed = {"requestedAt": 1762300000000, "reqPayload": record("a", "b")["request"],
              "respPayload": record("a", "b")["response"], "statusCode": "503"}
    with pytest.raises(Quarantined, match="status 503"):
        parse_record(failed)


def test_the_same_call_in_two_sessions_stays_two_calls(tmp_path):
    logs = folder_of(tmp_path)
    write_lines(logs.folder / "a.jsonl", [{**record("same", "x"), "session_id": "s1"}, {**record("same", "x"), "session_id": "s2"},
                                          {**record("same", "x"), "session_id": "s2"}])

    calls = logs.collect().calls

    assert sorted(zip(calls["session_id"], calls["occurrences"])) == [("s1", 1), ("s2", 2)]


def test_the_count_check_fails_when_a_record_ends_nowhere(tmp_path):
    file = LogFile(tmp_path / "a.jsonl", "a.jsonl", "0" * 64, datetime(2025, 11, 4), size=40)
    line = {"called_at": None, "step": "collect", "reason": "malformed JSON", "excerpt": ""}
    every_line_ended = FileParse(lines=2, bytes=40, records=2,
                                 quarantine=[{**line, "source_line": 1}, {**line, "source_line": 2}])
    line_2_dropped = FileParse(lines=2, bytes=40, records=2, quarantine=[{**line, "source_line": 1}])

    assert assemble([file], [every_line_ended]).stats.reconciles()
    assert not assemble([file], [line_2_dropped]).stats.reconciles()


def test_the_count_check_fails_when_reading_stops_before_the_end_of_a_file(tmp_path):
    logs = folder_of(tmp_path)
    write_lines(logs.folder / "a.jsonl", [b"{}", b"{}"])
    write_lines(logs.folder / "b.jsonl.gz", [b"{}"])
    [plain, packed] = logs.files().files
    parses = [parse_log_file(plain.path, 2**24), parse_log_file(packed.path, 2**24)]

    assert assemble([plain, packed], parses).stats.bytes_read == plain.size + packed.size
    assert assemble([plain, packed], parses).stats.reconciles()
    stopped_early = FileParse(**{**asdict(parses[0]), "bytes": plain.size - 3})
    assert not assemble([plain, packed], [stopped_early, parses[1]]).stats.reconciles()


def test_an_excerpt_never_ends_in_half_a_token(tmp_path):
    logs = folder_of(tmp_path)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJlbWFpbCI6ImphbmUuZG9lQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    line = ('{"timestamp": 1762300000, "broken": "' + "x" * 150 + " token=" + jwt + '"').encode()
    write_lines(logs.folder / "a.jsonl", [line])

    [excerpt] = logs.collect().quarantine["excerpt"]

    assert excerpt.startswith("{\"timestamp\": 1762300000") and "eyJ" not in excerpt
