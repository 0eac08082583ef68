"""The demo log generator: deterministic, the promised number of calls, and the content later steps rely on."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from demo.logs import write_demo_logs

CALLS = 2000


@dataclass
class Seen:
    """One model call as read back from any of the formats."""

    file: str
    system: str
    user: str
    content: str | None
    tool_calls: list[tuple[str, dict]]
    hint: str | None


@dataclass
class Logs:
    calls: list[Seen]
    bad_lines: dict[str, int]
    tool_spans: int
    raw_arguments: list[object]  # tool-call arguments exactly as the request/response records logged them


def _arguments(value: str | dict) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def _read(folder: Path) -> Logs:
    logs = Logs(calls=[], bad_lines={}, tool_spans=0, raw_arguments=[])
    for path in sorted(folder.iterdir()):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for line in data.splitlines():
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                record = None
            if isinstance(record, dict) and "request" in record and "response" in record:
                _read_request(path.name, record, logs)
            elif isinstance(record, dict) and "messages" in record:
                _read_transcript(path.name, record, logs)
            elif isinstance(record, dict) and "resourceSpans" in record:
                _read_export(path.name, record, logs)
            else:
                logs.bad_lines[path.name] = logs.bad_lines.get(path.name, 0) + 1
    return logs


def _read_request(name: str, record: dict, logs: Logs) -> None:
    messages = record["request"]["messages"]
    reply = record["response"]["choices"][0]["message"]
    calls = reply.get("tool_calls") or []
    logs.raw_arguments += [c["function"]["arguments"] for c in calls]
    logs.calls.append(Seen(
        name, messages[0]["content"], messages[-1]["content"], reply["content"],
        [(c["function"]["name"], _arguments(c["function"]["arguments"])) for c in calls], record.get("workload_id"),
    ))


def _read_transcript(name: str, record: dict, logs: Logs) -> None:
    messages = record["messages"]
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        user = next(m["content"] for m in reversed(messages[:index]) if m["role"] == "user")
        functions = [c["function"] for c in message.get("tool_calls") or []]
        calls = [(f["name"], _arguments(f["arguments"])) for f in functions]
        hint = record["metadata"].get("workload_id")
        logs.calls.append(Seen(name, messages[0]["content"], user, message["content"], calls, hint))


def _read_export(name: str, record: dict, logs: Logs) -> None:
    for resource in record["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                attributes = {a["key"]: a["value"] for a in span["attributes"]}
                if attributes["gen_ai.operation.name"]["stringValue"] != "chat":
                    logs.tool_spans += 1
                    continue
                text = {k: v.get("stringValue") for k, v in attributes.items()}
                parts = json.loads(text["gen_ai.output.messages"])[0]["parts"]
                logs.calls.append(Seen(
                    name,
                    json.loads(text["gen_ai.system_instructions"])[0]["content"],
                    json.loads(text["gen_ai.input.messages"])[-1]["parts"][0]["content"],
                    next((p["content"] for p in parts if p["type"] == "text"), None),
                    [(p["name"], p["arguments"]) for p in parts if p["type"] == "tool_call"],
                    text.get("gen_ai.agent.name"),
                ))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo_logs(folder, calls=CALLS)
    return folder


@pytest.fixture(scope="module")
def logs(folder: Path) -> Logs:
    return _read(folder)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    write_demo_logs(tmp_path / "a", calls=300, seed=3)
    write_demo_logs(tmp_path / "b", calls=300, seed=3)
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")


def test_different_seed_writes_different_files(tmp_path: Path) -> None:
    write_demo_logs(tmp_path / "a", calls=300, seed=3)
    write_demo_logs(tmp_path / "b", calls=300, seed=4)
    first, second = _contents(tmp_path / "a"), _contents(tmp_path / "b")
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_returns_the_paths_it_wrote(tmp_path: Path) -> None:
    paths = write_demo_logs(tmp_path, calls=100)
    assert sorted(paths) == sorted(tmp_path.iterdir())


def test_writes_the_requested_number_of_calls(logs: Logs) -> None:
    assert abs(len(logs.calls) - CALLS) <= CALLS * 0.02


def test_writes_at_least_three_formats(folder: Path, logs: Logs) -> None:
    names = {p.name for p in folder.iterdir()}
    assert {"requests-2026-11-02.jsonl.gz", "requests-2026-11-09.jsonl.gz", "transcripts.jsonl"} <= names
    assert {"otel-spans.jsonl", "broken-export.jsonl"} <= names
    assert {c.file for c in logs.calls} == names


def test_broken_export_has_exactly_five_bad_lines_among_good_records(logs: Logs) -> None:
    assert logs.bad_lines == {"broken-export.jsonl": 5}
    assert any(c.file == "broken-export.jsonl" for c in logs.calls)


def test_some_request_records_are_written_twice(folder: Path) -> None:
    lines = [line for p in folder.glob("requests-*.jsonl.gz") for line in gzip.decompress(p.read_bytes()).splitlines()]
    duplicates = len(lines) - len(set(lines))
    assert 0.002 * len(lines) <= duplicates <= 0.03 * len(lines)


def test_otel_exports_hold_tool_spans_that_are_not_calls(logs: Logs) -> None:
    assert logs.tool_spans > 0


def test_transcripts_hold_several_assistant_turns_with_tool_results(folder: Path) -> None:
    for line in (folder / "transcripts.jsonl").read_text().splitlines():
        messages = json.loads(line)["messages"]
        assert sum(m["role"] == "assistant" for m in messages) >= 3
        results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
        assert results and all({"name", "email", "phone"} <= set(r["customer"]) for r in results)


def test_timestamps_fall_in_the_period_and_in_order_within_each_file(folder: Path) -> None:
    start = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()
    for path in folder.glob("requests-*.jsonl.gz"):
        stamps = [json.loads(line)["timestamp"] for line in gzip.decompress(path.read_bytes()).splitlines()]
        assert stamps == sorted(stamps)
        assert start <= stamps[0] and stamps[-1] < start + 14 * 86_400
    spans = [json.loads(line) for line in (folder / "otel-spans.jsonl").read_text().splitlines()]
    starts = [int(s["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"]) for s in spans]
    assert starts == sorted(starts)


def test_each_task_hint_has_one_fixed_system_prompt(logs: Logs) -> None:
    prompts: dict[str, set[str]] = {}
    for call in logs.calls:
        if call.hint:
            prompts.setdefault(call.hint, set()).add(call.system)
    assert set(prompts) == {"intent", "ticket_routing", "order_lookup", "refund_extraction", "summary", "planning"}
    assert all(len(p) == 1 for p in prompts.values())


def test_task_hints_are_missing_on_some_records(logs: Logs) -> None:
    missing = sum(c.hint is None for c in logs.calls) / len(logs.calls)
    assert 0.1 < missing < 0.3


def test_refund_replies_are_json_with_values_from_the_email(logs: Logs) -> None:
    symbols = {"USD": "$", "EUR": "€", "GBP": "£"}
    refunds = [c for c in logs.calls if c.system.startswith("You extract refund details")]
    assert refunds
    for call in refunds:
        answer = json.loads(call.content)
        assert answer["order_id"] in call.user
        assert f"{answer['amount']:.2f}" in call.user
        assert answer["currency"] in call.user or symbols[answer["currency"]] in call.user
        assert answer["reason"] in {"damaged", "wrong_item", "late_delivery", "not_as_described", "changed_mind"}


def test_order_lookups_ask_for_the_order_id_in_the_preceding_user_message(logs: Logs) -> None:
    lookups = [(c.user, args) for c in logs.calls for name, args in c.tool_calls if name == "lookup_order"]
    assert len(lookups) > CALLS * 0.05
    for user, args in lookups:
        assert re.fullmatch(r"AC-\d{6}", args["order_id"]) and args["order_id"] in user


def test_intent_and_routing_answers_use_fixed_labels(logs: Logs) -> None:
    intents = {c.content for c in logs.calls if c.system.startswith("You are the intent classifier")}
    assert intents == {"order_status", "refund_request", "shipping_address_change", "product_question",
                       "account_access", "complaint"}
    routes = [args for c in logs.calls for name, args in c.tool_calls if name == "route_ticket"]
    assert routes and all(r["queue"] in {"billing", "shipping", "returns", "technical", "general"} for r in routes)


def test_planning_replies_do_not_repeat_except_in_logger_retries(logs: Logs) -> None:
    plans = [c for c in logs.calls if c.system.startswith("You are the Acme operations planning assistant")]
    assert len(plans) > CALLS * 0.05
    assert len({c.content for c in plans}) == len({(c.user, c.content) for c in plans})


def test_some_request_tool_arguments_are_logged_as_objects(logs: Logs) -> None:
    objects = sum(isinstance(a, dict) for a in logs.raw_arguments) / len(logs.raw_arguments)
    assert 0.2 < objects < 0.5


def test_personal_data_appears_in_user_messages(folder: Path, logs: Logs) -> None:
    users = "\n".join(c.user for c in logs.calls)
    assert re.search(r"[\w.+-]+@[\w-]+\.\w+", users)
    assert re.search(r"\b4\d{3}(?: ?\d{4}){3}\b", users)
    assert re.search(r"\bsk-[A-Za-z0-9]{48}\b", users)
    assert re.search(r"\bAKIA[A-Z0-9]{16}\b|\bghp_[A-Za-z0-9]{36}\b", users)


def test_command_line_writes_the_files_and_reports_the_calls(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo.logs", str(tmp_path), "--calls", "50", "--seed", "1"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
    )
    assert "50 calls" in result.stdout
    assert str(tmp_path / "transcripts.jsonl") in result.stdout


def test_start_and_days_set_the_period(tmp_path: Path) -> None:
    paths = write_demo_logs(tmp_path, calls=100, start=date(2027, 1, 4), days=3)
    assert [p.name for p in paths if p.name.startswith("requests-")] == ["requests-2027-01-04.jsonl.gz"]


def test_long_mode_writes_agent_conversations_whose_calls_repeat_a_long_policy_and_tool_schemas(tmp_path):
    from pipeline.collect import LogFile, assemble, parse_log_file
    from pipeline.context import ContextPolicy, InputRule
    from demo.long_logs import write_long_logs
    from pipeline.pruning import learn_pruning

    path = write_long_logs(tmp_path, conversations=12)
    assert write_long_logs(tmp_path / "again", conversations=12).read_bytes() == path.read_bytes()
    transcripts = [json.loads(line) for line in path.read_text().splitlines()]
    turns = sum(m["role"] == "assistant" for t in transcripts for m in t["messages"])
    collection = assemble([LogFile(path, path.name, path.name, datetime(2026, 11, 2), path.stat().st_size)], [parse_log_file(path, 2**24)])
    calls = collection.calls.to_dict("records")

    assert len(calls) == turns and collection.stats.quarantined == 0  # one call per assistant turn
    assert {len(json.loads(c["tools"])) for c in calls} == {14}
    assert {len(json.loads(c["messages"])[0]["content"]) > 4000 for c in calls} == {True}
    assert max(len(json.loads(c["messages"])) for c in calls) >= 8  # multi-turn, with tool results
    rule = InputRule(learn_pruning(calls), ContextPolicy(window=4))
    logged = sum(len(c["messages"]) + len(c["tools"]) for c in calls)
    pruned = sum(len(p["messages"]) + len(p["tools"]) for p in map(rule.prepare, calls))
    assert logged / pruned > 5


def test_long_logs_are_the_same_bytes_whatever_the_hash_seed_of_the_process(tmp_path):
    for hash_seed in ("1", "2"):
        subprocess.run([sys.executable, "-m", "demo.long_logs", str(tmp_path / hash_seed), "--conversations", "30"], check=True,
                       cwd=Path(__file__).parents[1], env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True)
    assert (tmp_path / "1" / "airline-transcripts.jsonl").read_bytes() == (tmp_path / "2" / "airline-transcripts.jsonl").read_bytes()


def test_long_logs_name_the_job_of_every_call_beside_the_logs_where_step_1_does_not_read_it(tmp_path):
    from collections import Counter

    from demo.long_logs import read_jobs, write_long_logs
    from pipeline.collect import LogFolder
    from pipeline.settings import Settings

    path = write_long_logs(tmp_path / "logs", conversations=60)
    collection = LogFolder.of(Settings(home=tmp_path)).collect()
    calls = collection.calls.to_dict("records")
    jobs = {(j["source_file"], j["source_line"], j["turn"]): j["job"] for j in read_jobs(path)}

    assert {c["source_file"] for c in calls} == {path.name} and collection.stats.quarantined == 0
    assert len(jobs) == len(calls)
    for call in calls:
        tool_calls = json.loads(call["response_tool_calls"])
        job = jobs[call["source_file"], call["source_line"], call["turn"]]
        assert job == f"tool:{tool_calls[0]['name']}" if tool_calls else job.startswith("text:")
    assert {"tool:update_reservation_flights", "tool:book_reservation", "tool:calculate", "text:ask_user_id",
            "text:present_flight_options", "text:confirm_action", "text:refuse_policy"} <= set(jobs.values())
    lengths = Counter(line for _, line, _ in jobs).values()
    assert min(lengths) <= 4 and max(lengths) >= 15  # short and long conversations
    confirmations = [c["response_text"] for c in calls if jobs[c["source_file"], c["source_line"], c["turn"]] == "text:confirm_action"]
    assert len(set(confirmations)) == len(confirmations)  # one job, asked about different things


def test_the_demo_scrub_file_allows_the_shops_ids_and_every_product_it_sells() -> None:
    import yaml

    from demo.logs import _PRODUCTS

    allowed = yaml.safe_load((Path(__file__).resolve().parents[1] / "demo" / "scrub.yaml").read_text())["allow"]
    for value in ["AC-123456", "AO-12345", *_PRODUCTS]:
        assert any(re.fullmatch(pattern, value) for pattern in allowed), value
