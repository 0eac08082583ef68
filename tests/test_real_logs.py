"""The collector on logs written by other people: ToolBench agent trajectories and BFCL prompts with gold calls."""

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from pipeline.collect import LogFile, assemble, parse_log_file


def collect_folder(folder: Path):
    files = [LogFile(p, p.name, p.name, datetime(2026, 11, 2), p.stat().st_size) for p in sorted(folder.glob("*.jsonl"))]
    return assemble(files, [parse_log_file(f.path, 4 * 1024 * 1024) for f in files])


def test_toolbench_trajectories_in_legacy_function_call_form(shared_data, tmp_path):
    """Each ToolBench `train_messages` entry is a conversation up to one of the agent's 52 LLM calls."""
    lines, functions, logged_replies, assistant_turns = [], set(), set(), 0
    for path in sorted((shared_data / "toolbench_chatgpt_dfs_examples" / "answer").glob("*/*.json")):
        answer = json.loads(path.read_text())["answer_generation"]
        functions |= {f["name"] for f in answer["function"]}
        for messages in answer.get("train_messages", []):
            lines.append(json.dumps({"messages": messages, "functions": answer["function"]}))
            logged_replies.add((len(messages) - 1, reply_key(messages[-1].get("content"), messages[-1].get("function_call"))))
            assistant_turns += sum(m["role"] == "assistant" for m in messages)
    (tmp_path / "toolbench.jsonl").write_text("\n".join(lines) + "\n")

    collection = collect_folder(tmp_path)

    calls = collection.calls
    assert len(lines) == 52
    assert collection.stats.records == assistant_turns
    assert collection.stats.reconciles() and collection.stats.quarantined == 0
    # Later conversations repeat earlier turns, which collapse as duplicates; the DFS agent's retries changed some
    # earlier contexts, so a few earlier turns stay distinct calls beside the 52 logged ones.
    assert 52 <= len(calls) < assistant_turns
    found = set()
    for messages, text, tool_calls in zip(calls["messages"], calls["response_text"], calls["response_tool_calls"]):
        tool_call = (json.loads(tool_calls) or [None])[0]
        found.add((len(json.loads(messages)), reply_key(None if text is pd.NA else text, tool_call)))
    assert logged_replies <= found


def reply_key(text, function_call) -> str:
    if function_call is None:
        return f"text:{text}"
    arguments = function_call["arguments"]
    return f"call:{function_call['name']}:{json.loads(arguments) if isinstance(arguments, str) else arguments}"


def bfcl_records(folder: Path, name: str) -> tuple[list[str], int]:
    """BFCL prompts as request/response logs: the gold call (first accepted value per argument) is the reply."""
    answers = {}
    answer_file = folder / "possible_answer" / name
    if answer_file.exists():
        for line in answer_file.read_text().splitlines():
            gold = json.loads(line)
            answers[gold["id"]] = gold["ground_truth"]
    lines = []
    for line in (folder / name).read_text().splitlines():
        prompt = json.loads(line)
        request = {"model": "gpt-4o", "messages": prompt["question"][0], "tools": [{"type": "function", "function": f} for f in prompt["function"]]}
        record = {"timestamp": 1762300000, "workload_id": prompt["id"], "request": request}
        if prompt["id"] in answers:
            tool_calls = [
                {"id": f"call_{i}", "type": "function", "function": {"name": fn, "arguments": {k: v[0] for k, v in args.items()}}}
                for i, gold in enumerate(answers[prompt["id"]])
                for fn, args in gold.items()
            ]
            record["response"] = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": tool_calls}, "finish_reason": "tool_calls"}]}
        lines.append(json.dumps(record))
    return lines, len(answers)


def test_bfcl_prompts_with_gold_calls_are_collected_and_prompts_without_replies_quarantined(shared_data, tmp_path):
    folder = shared_data / "bfcl_v4"
    answered, answered_count = bfcl_records(folder, "BFCL_v4_live_multiple.json")
    unanswered, _ = bfcl_records(folder, "BFCL_v4_live_irrelevance.json")
    (tmp_path / "bfcl.jsonl").write_text("\n".join(answered + unanswered) + "\n")

    collection = collect_folder(tmp_path)

    stats = collection.stats
    assert stats.records == len(answered) + len(unanswered)
    assert stats.reconciles()
    assert stats.quarantined == len(unanswered)
    assert set(collection.quarantine["reason"]) == {"call without a response"}
    assert stats.calls_kept + stats.duplicates == answered_count
    first = collection.calls.iloc[0]
    assert json.loads(first["response_tool_calls"])[0]["name"] in {t["function"]["name"] for t in json.loads(first["tools"])}
