"""What the gateway serves, logged as the request/response records step 1 reads, and the live pairs read back.

Every call the gateway answers becomes one line in `SLM_LOGS_DIR/gateway/gateway-<day>.jsonl` (one file per UTC
day, owner-only): NVIDIA data-flywheel's `{timestamp, client_id, request, response}`, which step 1 reads as any
other log, so the next cycle learns from it. Beside those fields the record says who served the call (`served_by`:
`llm`, or the adapter `task-002/v3`), the task the router gave it and the task's mode, the latency, and, whenever an
adapter answered, its raw reply (`slm`). When the adapter served and the LLM was asked too (an audit), the LLM's
answer is under `llm`. A call that failed carries `error_details`, which step 1 quarantines with its reason.

A call with both an LLM answer and an adapter reply is a live pair: step 6 scores the adapter's reply against the
LLM's as it scores held-out calls, which is the task's live agreement.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipeline.formats import Quarantined, parse_record

FOLDER = "gateway"  # under SLM_LOGS_DIR
CLIENT_ID = "agent-slm-gateway"
LLM = "llm"


def adapter_name(task_id: str, version: int) -> str:
    return f"{task_id}/v{version}"


def log_file(folder: Path, when: datetime) -> Path:
    return folder / FOLDER / f"gateway-{when:%Y-%m-%d}.jsonl"


def record(
    request: dict,
    response: dict | list | None,
    *,
    at: datetime,
    served_by: str,
    latency_ms: float,
    task_id: str | None,
    mode: str,
    route: str,
    slm: dict | None = None,
    llm: dict | None = None,
    error: str | None = None,
) -> dict:
    """One served call as a log record; `response` is a chat completion, or the chunks of a streamed one."""
    line = {"timestamp": at.replace(tzinfo=UTC).timestamp(), "client_id": CLIENT_ID, "request": request,
            "response": response, "latency_ms": round(latency_ms, 1), "served_by": served_by, "task_id": task_id,
            "mode": mode, "route": route}
    if slm is not None:
        line["slm"] = slm  # {"adapter", "text", "latency_ms", "fallback"}
    if llm is not None:
        line["llm"] = llm  # {"response", "latency_ms"}
    if error:
        line["error_details"] = error
    return line


def records(folder: Path) -> Iterator[dict]:
    """The gateway's records under the logs folder, oldest file first; a line that does not parse is skipped (step 1
    quarantines it with its reason)."""
    for path in sorted((folder / FOLDER).glob("gateway-*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def live_pairs(folder: Path) -> pd.DataFrame:
    """One row per call an adapter and the LLM both answered: the task, the adapter's version, when, the LLM's reply
    as a canonical call (read by step 1's own parser) and the adapter's raw reply, and whether the gateway fell back."""
    rows = []
    for line in records(folder):
        slm = line.get("slm")
        if not slm or not line.get("task_id") or line.get("error_details"):
            continue
        answer = line.get("llm", {}).get("response") if line.get("served_by") != LLM else line.get("response")
        if answer is None:
            continue
        try:
            [call] = parse_record({"request": line["request"], "response": answer}).calls
        except (Quarantined, ValueError, KeyError, TypeError):
            continue
        rows.append({
            "task_id": line["task_id"], "adapter": slm["adapter"], "at": datetime.fromtimestamp(line["timestamp"], UTC).replace(tzinfo=None),
            "llm_text": call.response_text, "llm_tool_calls": json.dumps(call.response_tool_calls, ensure_ascii=False),
            "slm_text": slm.get("text") or "", "fallback": slm.get("fallback") or "",
        })
    columns = ["task_id", "adapter", "at", "llm_text", "llm_tool_calls", "slm_text", "fallback"]
    return pd.DataFrame(rows, columns=columns)
