"""A stand-in LLM for the demo, the gateway's tests and its benchmark: an OpenAI-compatible server that answers each
call with the reply its logs hold for the same messages (any other call gets a short text), streamed or not, after
`latency_s`. It can be switched to fail (`down`), so that a test sees what the gateway does without its LLM.

    .venv/bin/python -m demo.llm LOGS_FOLDER [--port 8401]      # then SLM_CONFIG's serve.upstream_base_url: http://127.0.0.1:8401/v1

`background_server` runs any ASGI app on a free loopback port in a thread, as the tests and benchmark run both this
and the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from pipeline.collect import LogFolder
from pipeline.formats import canonical_request

DEFAULT_REPLY = "Happy to help: could you tell me a little more?"
MODEL = "demo-llm"


def messages_key(messages: list[dict]) -> str:
    """Calls with the same canonical messages share a key, whichever log format or client they came through."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class DemoLLM:
    def __init__(self, replies: dict[str, dict] | None = None, latency_s: float = 0.0, chunk_delay_s: float = 0.0):
        self.replies = replies or {}  # messages key → {"content", "tool_calls"}
        self.latency_s, self.chunk_delay_s = latency_s, chunk_delay_s
        self.down = False
        self.calls = 0

    @classmethod
    def from_calls(cls, calls, **options) -> DemoLLM:
        """Replies from canonical calls (rows of `raw_calls`): each call's messages answered with its logged reply."""
        replies = {}
        for call in calls:
            replies[messages_key(json.loads(call["messages"]))] = {
                "content": call["response_text"], "tool_calls": json.loads(call["response_tool_calls"])}
        return cls(replies, **options)

    def reply(self, payload: dict) -> dict:
        messages, _ = canonical_request(payload)
        return self.replies.get(messages_key(messages)) or {"content": DEFAULT_REPLY, "tool_calls": []}

    def app(self) -> FastAPI:
        app = FastAPI(title="demo LLM")

        @app.post("/v1/chat/completions")
        async def complete(request: Request):
            self.calls += 1
            if self.down:
                return JSONResponse({"error": {"message": "The demo LLM is down.", "type": "server_error"}}, status_code=503)
            payload = await request.json()
            await asyncio.sleep(self.latency_s)
            completion = _completion(self.reply(payload), payload.get("model") or MODEL)
            if not payload.get("stream"):
                return completion
            usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._events(completion, usage), media_type="text/event-stream")

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "demo"}]}

        return app

    async def _events(self, completion: dict, include_usage: bool):
        head = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        message = completion["choices"][0]["message"]
        deltas = [{"role": "assistant", "content": ""}]
        deltas += [{"content": word} for word in _pieces(message.get("content") or "")]
        deltas += [{"tool_calls": [{"index": i, "id": c["id"], "type": "function", "function": c["function"]}]}
                   for i, c in enumerate(message.get("tool_calls") or [])]
        for delta in deltas:
            yield f"data: {json.dumps(head | {'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n"
            await asyncio.sleep(self.chunk_delay_s)
        finish = completion["choices"][0]["finish_reason"]
        yield f"data: {json.dumps(head | {'choices': [{'index': 0, 'delta': {}, 'finish_reason': finish}]})}\n\n"
        if include_usage:
            yield f"data: {json.dumps(head | {'choices': [], 'usage': completion['usage']})}\n\n"
        yield "data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)] if text else []


def _completion(reply: dict, model: str) -> dict:
    calls = [{"id": c.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}} for c in reply["tool_calls"]]
    message = {"role": "assistant", "content": reply["content"]} | ({"tool_calls": calls} if calls else {})
    completion_tokens = max(1, len(json.dumps(message)) // 4)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": completion_tokens, "total_tokens": 100 + completion_tokens},
    }


@contextmanager
def background_server(app) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL, and stops it (draining) on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="An OpenAI-compatible stand-in LLM answering from agent logs.")
    parser.add_argument("logs", type=Path, help="log folder whose calls it answers as logged")
    parser.add_argument("--port", type=int, default=8401)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    calls = LogFolder(args.logs, Path(tempfile.mkdtemp()), 4 << 20, date(2000, 1, 1)).collect().calls
    uvicorn.run(DemoLLM.from_calls(calls.to_dict("records"), latency_s=args.latency).app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
