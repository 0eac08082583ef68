"""Steps 1–2 on hostile logs: demo logs mixed with malformed records and with secrets planted in every field a call
carries, run through Dagster as `collect_and_scrub`; then every table past step 1 and Dagster's own storage are
searched for the planted values.

    .venv/bin/python bench/hostile.py [--calls 300] [--copies 20]

Prints the records read, what was quarantined by kind of reason, whether the counts reconciled, and how many planted
values survive where none may (`clean_calls`, `pii_audit`, `quarantine`, Dagster's run and event storage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dagster import AssetKey, DagsterInstance  # noqa: E402

from demo.logs import write_demo_logs  # noqa: E402
from orchestration.definitions import build_definitions  # noqa: E402
from orchestration.partitions import day_range  # noqa: E402
from pipeline.collect import LogFolder  # noqa: E402
from pipeline.settings import ScrubConfig, Settings  # noqa: E402
from pipeline.warehouse import open_warehouse  # noqa: E402
from test_hostile_input import HOSTILE  # noqa: E402

EMAIL, KEY, CARD = "quinn.marlow@example.net", "sk-proj-Zq8Xv2Lm4Nb6Pc1Rd3Tf5Yh7Kj9Wg0Se2Ua4Io6Ep8", 4111111111111111


def planted(i: int) -> dict:
    """A request/response record with a secret in every field a call carries."""
    tool_result = {EMAIL: {"card": float(CARD), "owner": f"contact {EMAIL}"}, "note": KEY}
    messages = [
        {"role": "system", "content": f"You help {EMAIL}."},
        {"role": "user", "name": EMAIL, "content": f"my key is {KEY} and card {CARD}"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{EMAIL}", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})}}]},
        {"role": "tool", "tool_call_id": f"call_{EMAIL}", "content": json.dumps(tool_result)},
        {"role": "tool", "tool_call_id": "c2", "content": '{"note": "' + EMAIL + '", "note": "ok"}'},
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "description": f"Look up, e.g. {EMAIL}", "parameters": {
        "type": "object", "properties": {"name": {"type": "string", "description": f"as in {KEY}"}}}}}]
    return {
        "timestamp": 1793700000 + i * 60, "session_id": EMAIL, "workload_id": f"w-{EMAIL}",
        "request": {"model": f"ft:gpt-4o:{EMAIL}", "messages": messages, "tools": tools},
        "response": {"model": "gpt-4o", "choices": [{"finish_reason": "stop", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": EMAIL, "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"n": CARD})}}]}}]},
    }


def failed(i: int) -> dict:
    return {"requestedAt": (1793700000 + i * 60) * 1000, "reqPayload": {"messages": [{"role": "user", "content": "x"}]},
            "statusCode": "401", "errorMessage": f"Incorrect API key provided: {KEY}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="demo calls beside the hostile records")
    parser.add_argument("--copies", type=int, default=20, help="copies of each hostile and planted record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home, logs = Path(tmp) / "home", Path(tmp) / "logs"
        write_demo_logs(logs, calls=args.calls, days=2)
        lines = [line for _ in range(args.copies) for line in HOSTILE.values()]
        lines += [json.dumps(planted(i)) for i in range(args.copies)] + [json.dumps(failed(i)) for i in range(args.copies)]
        (logs / "hostile.jsonl").write_text("\n".join(lines) + "\n")
        settings = Settings(home=home, logs_dir=logs, scrub=ScrubConfig(processes=2))
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        (home / "dagster").mkdir(parents=True)
        (home / "dagster" / "dagster.yaml").write_text((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
        days = LogFolder.of(settings).days()
        started = time.perf_counter()
        with DagsterInstance.get() as instance:
            result = build_definitions(settings).resolve_job_def("collect_and_scrub").execute_in_process(
                instance=instance, tags=day_range(days), raise_on_error=False)
            raw = instance.get_latest_materialization_event(AssetKey("raw_calls"))
        seconds = time.perf_counter() - started
        warehouse = open_warehouse(settings.warehouse)
        quarantine = warehouse.read("quarantine")
        survivors = Counter()
        for table in ("clean_calls", "pii_audit", "quarantine"):
            text = warehouse.read(table).to_json()
            survivors.update({table: sum(text.count(v) for v in (EMAIL, KEY, str(CARD)))})
        dagster_bytes = b"".join(p.read_bytes() for p in (home / "dagster").rglob("*") if p.is_file())
        survivors["Dagster storage"] = sum(dagster_bytes.count(v.encode()) for v in (EMAIL, KEY, str(CARD)))
        metadata = raw.asset_materialization.metadata if raw else {}
    print(f"run {'succeeded' if result.success else 'FAILED'} in {seconds:.0f} s over {len(days)} days "
          f"({len(lines)} hostile and planted records beside {args.calls} demo calls)")
    if "reconciliation" in metadata:
        print(f"  step 1: {metadata['reconciliation'].value}")
    kinds = Counter(f"{step}: {reason.split(':')[0].split(' (')[0]}" for step, reason in zip(quarantine["step"], quarantine["reason"]))
    print(f"  quarantined: {len(quarantine)}")
    for kind, count in kinds.most_common():
        print(f"    {count:>5}  {kind}")
    print("  planted values surviving (must all be 0):")
    for place, count in survivors.items():
        print(f"    {count:>5}  {place}")


if __name__ == "__main__":
    main()
