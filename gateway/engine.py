"""Where an adapter's reply comes from: the one place the gateway touches a model.

Every engine reads a live call exactly as evaluation did (`finetune/evaluate.py`): the call through the input rule
stored with the adapter (`finetune.adapters.input_rule`: static text pruned, the conversation in its window), rendered
by the prompt convention (`finetune.prompts.prompt_text`), greedy, the reply bounded by the task's budget. A call whose
prompt and reply budget do not fit the model's context is not generated: it stays with the LLM.

- `LocalEngine` generates in the gateway's own process on the engine steps 4 and 6 score with
  (`finetune.engines.load_engine`: CTranslate2 int8 with the task's adapter merged, by default), one reply at a time
  on a worker thread, so that what answers is what was evaluated.
- `VLLMEngine` sends the same rendered prompt to a vLLM server that holds every promoted adapter as a LoRA module
  named after its task (`pipeline/vllm.py` writes its configuration), the request's `model` naming the task.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import httpx

from pipeline.context import fits
from pipeline.modes import TaskServing
from pipeline.settings import EngineConfig


class Unfit(Exception):
    """The call's prompt and reply budget do not fit the model's context."""


class TooSlow(Exception):
    """The reply was not ready within the latency budget."""


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int


class Engine(Protocol):
    async def answer(self, task: TaskServing, call: dict, max_new_tokens: int, budget_s: float) -> Answer:
        """The task's adapter's raw reply to `call` (a canonical call: `messages`, `tools`), or `Unfit`, `TooSlow`."""

    def preload(self, tasks: list[TaskServing]) -> None:
        """Get ready to answer for `tasks`, in the background: the first call need not wait for a model to load."""


class _Prompts:
    """Rendering, shared by every engine: the input rule and tokenizer of each adapter, read once."""

    def __init__(self, adapters_root: Path):
        self.adapters_root = adapters_root

    def render(self, task: TaskServing, call: dict, max_new_tokens: int) -> tuple[str, int]:
        from finetune.prompts import prompt_text, token_count

        tokenizer = _tokenizer(task.checkpoint)
        prompt = prompt_text(tokenizer, _rule(self.adapters_root, task.task_id, task.adapter_version).prepare(call))
        length = token_count(tokenizer, prompt)
        if not fits(length, max_new_tokens, task.context_length):
            raise Unfit(f"{length} prompt tokens and {max_new_tokens} for the reply exceed the context of {task.context_length}")
        return prompt, length

    def schema(self, task: TaskServing, call: dict) -> dict | None:
        """The schema a structured reply follows, as in evaluation: its copied arguments are words of the call as
        the adapter reads it."""
        from finetune.constrained import reply_schema

        rule = _rule(self.adapters_root, task.task_id, task.adapter_version)
        return reply_schema(call, task.kind, rule.copying, rule.prepare(call))


@cache
def _rule(adapters_root: Path, task_id: str, version: int):
    from finetune.adapters import input_rule

    return input_rule(adapters_root, task_id, version)


@cache
def _tokenizer(checkpoint: str):
    from finetune.models import load_tokenizer

    return load_tokenizer(Path(checkpoint))


class LocalEngine:
    def __init__(self, adapters_root: Path, config: EngineConfig, engines_dir: Path):
        self.adapters_root, self.config, self.engines_dir = adapters_root, config, engines_dir
        self.prompts = _Prompts(adapters_root)
        self._engines: dict[tuple[str, int], object] = {}
        # an engine uses every core for one reply; replies queue here, and the wait counts against the budget
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter")

    async def answer(self, task: TaskServing, call: dict, max_new_tokens: int, budget_s: float) -> Answer:
        started = time.monotonic()
        prompt, length = self.prompts.render(task, call, max_new_tokens)
        schema = self.prompts.schema(task, call)
        job = self._worker.submit(self._generate, task, prompt, max_new_tokens, started + budget_s, schema)
        text, new_tokens = await asyncio.wrap_future(job)
        if time.monotonic() - started >= budget_s:
            raise TooSlow(f"no reply within {budget_s:.1f} s")
        return Answer(text, length, new_tokens)

    def preload(self, tasks: list[TaskServing]) -> None:
        for task in tasks:
            self._worker.submit(self._engine, task)

    def _generate(self, task: TaskServing, prompt: str, max_new_tokens: int, deadline: float,
                  schema: dict | None) -> tuple[str, int]:
        if deadline - time.monotonic() <= 0:  # waited in the queue past the budget: the LLM answers instead
            return "", 0
        generated = self._engine(task).generate([prompt], max_new_tokens, [schema])
        return generated.texts[0], generated.new_tokens

    def _engine(self, task: TaskServing):
        key = (task.task_id, task.adapter_version)
        if key not in self._engines:
            from finetune.engines import load_engine

            folder = self.adapters_root / task.task_id / f"v{task.adapter_version}"
            self._engines[key] = load_engine(Path(task.checkpoint), folder, self.config, self.engines_dir)
        return self._engines[key]


class VLLMEngine:
    def __init__(self, adapters_root: Path, base_url: str, client: httpx.AsyncClient):
        self.prompts = _Prompts(adapters_root)
        self.base_url = base_url.rstrip("/")
        self.client = client

    async def answer(self, task: TaskServing, call: dict, max_new_tokens: int, budget_s: float) -> Answer:
        prompt, length = self.prompts.render(task, call, max_new_tokens)
        body = {"model": task.task_id, "prompt": prompt, "max_tokens": max_new_tokens, "temperature": 0.0}
        try:
            url = self.base_url.replace("{candidate}", task.candidate) + "/completions"
            response = await self.client.post(url, json=body, timeout=budget_s)
        except httpx.TimeoutException as error:
            raise TooSlow(f"vLLM gave no reply within {budget_s:.1f} s") from error
        response.raise_for_status()
        completion = response.json()
        usage = completion.get("usage") or {}
        return Answer(completion["choices"][0]["text"].strip(), length, int(usage.get("completion_tokens") or 0))

    def preload(self, tasks: list[TaskServing]) -> None:
        """vLLM loads its LoRA modules itself."""
