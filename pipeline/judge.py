"""An optional LLM judge of free-text replies, through any OpenAI-compatible endpoint; off unless configured.

MiniLM similarity rewards a reply that reads like the LLM's; a judge asks whether it does the same job. With a
`judge:` section in SLM_CONFIG, step 6 has every text reply (base model and adapters alike) rated from 0 to 10
against the LLM's logged reply, and the rating over 10 becomes the reply's score, which the decision then uses;
similarity and ROUGE-L stay beside it. Nothing else needs it, and with no section nothing is sent anywhere.

The judge sees scrubbed text only: the held-out calls come from `clean_calls`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from openai import OpenAI

from pipeline.settings import JudgeConfig

RUBRIC = (
    "You grade a candidate reply against a reference reply to the same request. Placeholders such as <PERSON_1> "
    "stand for removed personal data; treat them as ordinary values. Score 10 when the candidate does the job the "
    "reference does (same facts, same decision, same format), 5 when it does part of it, 0 when it does not. "
    "Answer with the score alone, an integer from 0 to 10."
)
_RATING = re.compile(r"\b(10|[0-9])\b")


class JudgeError(RuntimeError):
    pass


class Judge:
    def __init__(self, config: JudgeConfig):
        if not config.model:
            raise JudgeError(f"judge at {config.base_url}: no model named")
        self.model = config.model
        self.client = OpenAI(base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "unused",
                             timeout=config.timeout_s, max_retries=2)

    def __call__(self, requests: Sequence[str], references: Sequence[str], replies: Sequence[str]) -> list[float]:
        """Each reply's rating in [0, 1]; a judge that does not answer with a rating is an error, not a zero."""
        return [self.rate(q, r, p) for q, r, p in zip(requests, references, replies, strict=True)]

    def rate(self, request: str, reference: str, reply: str) -> float:
        answer = self.client.chat.completions.create(
            model=self.model,
            temperature=0,
            max_tokens=4,
            messages=[
                {"role": "system", "content": RUBRIC},
                {"role": "user", "content": f"Request:\n{request}\n\nReference reply:\n{reference}\n\nCandidate reply:\n{reply}"},
            ],
        ).choices[0].message.content or ""
        rating = _RATING.search(answer)
        if rating is None:
            raise JudgeError(f"the judge ({self.model}) answered {answer[:80]!r}, not a score from 0 to 10")
        return int(rating.group(1)) / 10


def judge_from(config: JudgeConfig) -> Judge | None:
    return Judge(config) if config.base_url else None
