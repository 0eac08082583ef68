"""The gateway: an OpenAI-compatible server that answers each of the agent's calls with its task's adapter where
step 6 let it, and with the LLM everywhere else.

For each `POST /v1/chat/completions`:

1. the body is read (at most `serve.max_body_bytes`), parsed and checked against the OpenAI request; what fails gets
   OpenAI's error shape and status, and nothing else happens;
2. the router step 3 wrote assigns the call to a task, or to none;
3. the task's mode (`pipeline/modes.py`) says who answers. Where the adapter serves, its reply is read and checked
   (`gateway/replies.py`); a reply that fails, an engine error, a call too long for the adapter, or a reply later
   than `serve.latency_budget_s` falls back to the LLM, counted by reason;
4. the LLM is any OpenAI-compatible endpoint (`serve.upstream_base_url`, its key from the environment variable
   `serve.upstream_api_key_env`, never logged); its answer, streamed or not, passes through as it wrote it;
5. in `shadow` mode, and for a share of the calls an adapter serves, the other side answers too, after the caller
   has its answer; then the call is logged once (`pipeline/served.py`), with both answers where there are two.

The router and the modes are files under `SLM_HOME/serving/`, reloaded when they change, so a new cycle's router or
a change of mode needs no restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from gateway.api import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    FunctionCall,
    ModelCard,
    ModelList,
    ReplyMessage,
    ToolCall,
    Usage,
    chunks,
    error_body,
)
from gateway.calllog import CallLog
from gateway.engine import Engine, LocalEngine, TooSlow, Unfit, VLLMEngine
from gateway.metrics import Metrics
from gateway.replies import check_reply
from pipeline.formats import Quarantined, canonical_request
from pipeline.modes import LLM, MODES_FILE, SHADOW, TaskServing, adapter_share, read_modes
from pipeline.router import ROUTER_FILE, Route, load_router
from pipeline.served import adapter_name, record
from pipeline.settings import Settings

RELOAD_EVERY_S = 1.0
TIMEOUT, UNFIT, ENGINE_ERROR, LENGTH = "timeout", "unfit", "engine_error", "length"


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, error_body(message, kind, param, code)


class _Reloaded:
    """A file's contents, read again when its modification time changes (checked at most once a second)."""

    def __init__(self, path: Path, load: Callable[[], object]):
        self.path, self.load = path, load
        self.value, self._stamp, self._checked = None, object(), -RELOAD_EVERY_S

    def get(self):
        now = time.monotonic()
        if now - self._checked >= RELOAD_EVERY_S:
            self._checked = now
            stamp = self.path.stat().st_mtime_ns if self.path.exists() else None
            if stamp != self._stamp:
                self.value, self._stamp = self.load(), stamp
        return self.value


@dataclass
class _Attempt:
    """The adapter's try at a call."""

    adapter: str
    text: str = ""
    completion: ChatCompletion | None = None
    fallback: str = ""  # why it was not returned
    detail: str = ""
    latency_ms: float = 0.0

    def logged(self) -> dict:
        return {"adapter": self.adapter, "text": self.text, "latency_ms": round(self.latency_ms, 1),
                "fallback": self.fallback or None}


class Gateway:
    def __init__(self, settings: Settings, engine: Engine | None = None, rng: random.Random | None = None):
        self.settings, self.config = settings, settings.serve
        self.metrics = Metrics()
        self.log = CallLog(settings.logs)
        self.rng = rng or random.Random()
        self.client = httpx.AsyncClient(timeout=self.config.upstream_timeout_s)
        self.engine = engine or (
            VLLMEngine(settings.adapters_dir, self.config.vllm_base_url, self.client) if self.config.vllm_base_url
            else LocalEngine(settings.adapters_dir, settings.engine, settings.engines_dir)
        )
        self.router = _Reloaded(settings.serving_dir / ROUTER_FILE, lambda: load_router(settings.serving_dir))
        self.modes = _Reloaded(settings.serving_dir / MODES_FILE, self._load_modes)
        self._pending: set[asyncio.Task] = set()

    def _load_modes(self) -> dict[str, TaskServing]:
        tasks = read_modes(self.settings.serving_dir, self.config.modes)
        self.engine.preload([t for t in tasks.values() if t.mode != LLM and t.adapter_version])
        return tasks

    @property
    def upstream_url(self) -> str:
        if not self.config.upstream_base_url:
            raise ApiError(503, "The gateway has no LLM to forward to: set serve.upstream_base_url", "server_error",
                           code="upstream_not_configured")
        return self.config.upstream_base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.config.upstream_api_key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    # --- one call -------------------------------------------------------------------------------------

    async def complete(self, http: Request) -> Response:
        received, at = time.perf_counter(), datetime.now(UTC).replace(tzinfo=None)
        payload = await self._payload(http)
        try:
            request = ChatCompletionRequest.model_validate(payload)
            messages, tools = canonical_request(payload)
        except ValidationError as error:
            raise _invalid(error) from None
        except Quarantined as error:
            raise ApiError(400, str(error), param="messages") from None
        call = {"messages": json.dumps(messages, ensure_ascii=False), "tools": json.dumps(tools, ensure_ascii=False)}
        router = self.router.get()
        route = router.assign([call], self.config.min_confidence)[0] if router else Route(None, 0.0, "no router yet")
        task = self.modes.get().get(route.task_id) if route.task_id else None
        mode = task.mode if task and task.adapter_version else LLM
        self.metrics.routes.labels("routed" if route.task_id else "unknown").inc()
        adapter_can = task is not None and task.adapter_version > 0 and _adapter_can_answer(request)
        self.metrics.routing.observe(time.perf_counter() - received)
        facts = dict(at=at, received=received, payload=payload, request=request, call=call, task=task, mode=mode,
                     task_id=route.task_id, route=f"{route.reason} ({route.confidence:.2f})")
        try:
            if adapter_can and self.rng.random() < adapter_share(mode):
                attempt = await self._adapter(task, call, request)
                if attempt.completion is not None:
                    return self._serve_adapter(attempt, facts)
                self.metrics.fallbacks.labels(task.task_id, attempt.fallback).inc()
                return await self._serve_llm(facts, attempt=attempt)
            return await self._serve_llm(facts, shadow=adapter_can and mode == SHADOW)
        except ApiError:
            raise
        except Exception as error:  # the caller gets a 500; the call is still logged, with what went wrong
            self._spawn(self._log_failure(facts, f"gateway failed: {type(error).__name__}", _nothing))
            raise

    async def _payload(self, http: Request) -> dict:
        limit = self.config.max_body_bytes
        declared = http.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        body = bytearray()
        async for piece in http.stream():
            body += piece
            if len(body) > limit:
                raise _too_large(limit)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"We could not parse the JSON body of your request ({error}). The OpenAI API expects a "
                                "JSON payload.") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return payload

    async def _adapter(self, task: TaskServing, call: dict, request: ChatCompletionRequest) -> _Attempt:
        started = time.perf_counter()
        attempt = _Attempt(adapter_name(task.task_id, task.adapter_version))
        asked = request.reply_budget()
        budget = min(task.max_new_tokens, asked) if asked else task.max_new_tokens
        try:
            answer = await self.engine.answer(task, call, budget, self.config.latency_budget_s)
        except TooSlow as error:
            attempt.fallback, attempt.detail = TIMEOUT, str(error)
        except Unfit as error:
            attempt.fallback, attempt.detail = UNFIT, str(error)
        except Exception as error:  # an engine that fails must not fail the call: the LLM answers
            attempt.fallback, attempt.detail = ENGINE_ERROR, f"{type(error).__name__}: {error}"[:300]
        else:
            attempt.text = answer.text
            checked = check_reply(answer.text, task.kind, request)
            cut = answer.completion_tokens >= budget and not (asked and asked <= task.max_new_tokens)
            if checked.reply is None:
                attempt.fallback, attempt.detail = checked.reason, checked.detail
            elif cut:
                attempt.fallback, attempt.detail = LENGTH, f"the reply reached the task's budget of {budget} tokens"
            else:
                attempt.completion = _completion(attempt.adapter, checked.reply, answer, budget)
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        return attempt

    def _serve_adapter(self, attempt: _Attempt, facts: dict) -> Response:
        completion = attempt.completion
        task = facts["task"]
        self.metrics.calls.labels("slm", task.task_id, facts["mode"]).inc()
        audit = self.rng.random() < self.config.audit_share

        async def log_after():
            llm = await self._ask_llm_quietly(facts["payload"]) if audit else None
            self._log(facts, completion.model_dump(exclude_none=True), attempt.adapter, slm=attempt.logged(), llm=llm)

        if facts["request"].stream:
            include_usage = bool(facts["request"].stream_options and facts["request"].stream_options.include_usage)
            events = [f"data: {c.model_dump_json(exclude_none=True)}\n\n" for c in chunks(completion, include_usage)]
            response: Response = StreamingResponse(_events(events + ["data: [DONE]\n\n"]), media_type="text/event-stream")
        else:
            response = JSONResponse(completion.model_dump(exclude_none=True))
        response.headers["x-slm-served-by"] = attempt.adapter
        self._spawn(log_after())
        return response

    async def _serve_llm(self, facts: dict, shadow: bool = False, attempt: _Attempt | None = None) -> Response:
        payload, task = facts["payload"], facts["task"]
        # a shadow answer starts now, so the adapter works while the LLM does; it is awaited before the call is logged
        shadow_job = asyncio.ensure_future(self._adapter(task, facts["call"], facts["request"])) if shadow else None

        async def slm_logged() -> dict | None:
            if shadow_job is None:
                return attempt.logged() if attempt else None
            done = await shadow_job
            if done.fallback:
                self.metrics.fallbacks.labels(task.task_id, done.fallback).inc()
            return done.logged()

        try:
            upstream = await self.client.send(
                self.client.build_request("POST", f"{self.upstream_url}/chat/completions", json=payload,
                                          headers=self._headers()),
                stream=bool(payload.get("stream")),
            )
        except ApiError:
            self._spawn(self._log_failure(facts, "upstream not configured", slm_logged))
            raise
        except httpx.HTTPError as error:
            self.metrics.errors.labels("upstream_unreachable").inc()
            self._spawn(self._log_failure(facts, f"upstream unreachable: {type(error).__name__}", slm_logged))
            raise ApiError(502, f"The upstream LLM could not be reached ({type(error).__name__}).", "upstream_error",
                           code="upstream_unreachable") from None
        task_label = facts["task_id"] or "unknown"
        if upstream.status_code >= 400:
            body = await upstream.aread()
            await upstream.aclose()
            self.metrics.errors.labels(f"upstream_{upstream.status_code}").inc()
            self._spawn(self._log_failure(facts, f"upstream status {upstream.status_code}: {body[:200]!r}", slm_logged))
            return Response(body, status_code=upstream.status_code,
                            media_type=upstream.headers.get("content-type", "application/json"))
        self.metrics.calls.labels(LLM, task_label, facts["mode"]).inc()
        if not payload.get("stream"):
            body = await upstream.aread()
            await upstream.aclose()
            try:
                answer = json.loads(body)
            except json.JSONDecodeError:
                self._spawn(self._log_failure(facts, "upstream answered with something that is not JSON", slm_logged))
                raise ApiError(502, "The upstream LLM's answer was not JSON.", "upstream_error") from None

            async def log_after():
                self._log(facts, answer, LLM, slm=await slm_logged())

            self._spawn(log_after())
            return Response(body, media_type="application/json", headers={"x-slm-served-by": LLM})
        return self._stream_llm(upstream, facts, slm_logged)

    def _stream_llm(self, upstream: httpx.Response, facts: dict, slm_logged) -> Response:
        """The LLM's events go to the caller as they come. Reading them is a task of its own, so that a caller who
        goes away mid-stream loses the gateway nothing: the answer is read to its end and logged."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def pump():
            pieces, error = [], None
            try:
                async for line in upstream.aiter_lines():
                    queue.put_nowait(line + "\n")
                    data = line[5:].strip() if line.startswith("data:") else ""
                    if data and data != "[DONE]":
                        pieces.append(json.loads(data))
            except (httpx.HTTPError, json.JSONDecodeError) as failure:
                error = f"upstream stream broke: {type(failure).__name__}"
                self.metrics.errors.labels("upstream_stream").inc()
                queue.put_nowait(f"data: {json.dumps(error_body(error, 'upstream_error'))}\n\n")
            finally:
                queue.put_nowait(None)
                await upstream.aclose()
            if error:
                await self._log_failure(facts, error, slm_logged)
            else:
                self._log(facts, pieces, LLM, slm=await slm_logged())

        self._spawn(pump())

        async def events() -> AsyncIterator[str]:
            while (line := await queue.get()) is not None:
                yield line

        return StreamingResponse(events(), media_type="text/event-stream", headers={"x-slm-served-by": LLM})

    async def _ask_llm_quietly(self, payload: dict) -> dict | None:
        """The LLM's answer to an adapter-served call, for live agreement; None where it cannot be had."""
        started = time.perf_counter()
        try:
            answer = await self.client.post(f"{self.upstream_url}/chat/completions", json={**payload, "stream": False},
                                            headers=self._headers())
            answer.raise_for_status()
            return {"response": answer.json(), "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
        except (httpx.HTTPError, ApiError, json.JSONDecodeError):
            self.metrics.errors.labels("audit_unanswered").inc()
            return None

    # --- the log --------------------------------------------------------------------------------------

    def _log(self, facts: dict, response, served_by: str, slm: dict | None = None, llm: dict | None = None,
             error: str | None = None) -> None:
        latency = time.perf_counter() - facts["received"]
        line = record(facts["payload"], response, at=facts["at"], served_by=served_by, latency_ms=latency * 1000,
                      task_id=facts["task_id"], mode=facts["mode"], route=facts["route"], slm=slm,
                      llm=llm, error=error)
        self.log.write(line, facts["at"])
        self.metrics.logged.inc()
        self.metrics.latency.labels("slm" if served_by != LLM else LLM).observe(latency)

    async def _log_failure(self, facts: dict, error: str, slm_logged) -> None:
        self._log(facts, None, LLM, slm=await slm_logged(), error=error)

    def _spawn(self, job) -> None:
        task = asyncio.ensure_future(job)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for every answer still being logged: a gateway that stops loses no call."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def models(self) -> ModelList:
        cards = [ModelCard(id=adapter_name(t.task_id, t.adapter_version), created=0, owned_by="agent-slm")
                 for t in self.modes.get().values() if t.adapter_version]
        try:
            listed = await self.client.get(f"{self.upstream_url}/models", headers=self._headers(), timeout=5.0)
            cards = [ModelCard(**{k: m[k] for k in ("id", "created", "owned_by")}) for m in listed.json()["data"]] + cards
        except (httpx.HTTPError, ApiError, KeyError, TypeError, json.JSONDecodeError):
            pass  # the adapters alone: an agent listing models must not fail because the LLM is away
        return ModelList(data=cards)

    def health(self) -> dict:
        modes = self.modes.get()
        return {"status": "ok", "router": self.router.get() is not None,
                "tasks": {t.task_id: t.mode for t in modes.values()},
                "upstream": bool(self.config.upstream_base_url)}


def _adapter_can_answer(request: ChatCompletionRequest) -> bool:
    """An adapter writes one text or tool reply: several choices, log-probabilities or audio are the LLM's."""
    return (request.n in (None, 1) and not request.logprobs and request.audio is None
            and "audio" not in (request.modalities or []))


def _completion(adapter: str, reply, answer, budget: int) -> ChatCompletion:
    calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:24]}",
                      function=FunctionCall(name=c["name"], arguments=json.dumps(c["arguments"], ensure_ascii=False)))
             for c in reply.tool_calls]
    finish = "tool_calls" if calls else ("length" if answer.completion_tokens >= budget else "stop")
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=adapter,
        choices=[Choice(message=ReplyMessage(content=reply.content, tool_calls=calls or None), finish_reason=finish)],
        usage=Usage(prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                    total_tokens=answer.prompt_tokens + answer.completion_tokens),
    )


async def _nothing() -> None:
    return None


async def _events(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than the gateway accepts ({limit:,} bytes).",
                    code="request_too_large")


def _invalid(error: ValidationError) -> ApiError:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return ApiError(400, f"Unrecognized request argument supplied: {where}", param=where)
    if first["type"] == "missing":
        return ApiError(400, f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter")
    return ApiError(400, f"Invalid value for '{where}': {first['msg']}", param=where, code="invalid_value")


def create_app(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await gateway.drain()
        await gateway.client.aclose()
        gateway.log.close()

    app = FastAPI(title="agent-slm gateway", lifespan=lifespan)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body, status_code=error.status)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        gateway.metrics.errors.labels("internal").inc()
        return JSONResponse(error_body(f"The gateway failed: {type(error).__name__}", "server_error"), status_code=500)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await gateway.complete(request)

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return await gateway.models()

    @app.get("/health")
    async def health() -> dict:
        return gateway.health()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gateway.metrics.exposition(), media_type="text/plain; version=0.0.4")

    return app
