"""Step 4's candidate small models: the registry shipped in `candidates.yaml`, extended by the user's own file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

SHIPPED = Path(__file__).with_name("candidates.yaml")

# For models without a chat template of their own (Gemma-3-270M is a base model). Gemma's turn markers are single
# tokens of its vocabulary, so a turn costs two tokens, and `<end_of_turn>` is where generation stops.
TEMPLATES = {
    "gemma": {
        "chat_template": (
            "{{ bos_token }}{% for message in messages %}<start_of_turn>"
            "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
            "{{ message['content'] }}<end_of_turn>\n{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
        ),
        "end_of_turn": "<end_of_turn>",
    },
}


@dataclass(frozen=True)
class Candidate:
    name: str
    source: dict  # see candidates.yaml
    architecture: str
    parameters: int
    context_length: int
    license: str
    chat_template: bool
    tool_calling: bool
    serving_usd_per_1m_tokens: float
    template: str = ""  # a key of TEMPLATES, for a model without a chat template
    instruction_tuned: bool = False  # trained to follow chat instructions: step 4 prefers it (pipeline.pick.choose)


def load_candidates(extra: Path | None = None) -> list[Candidate]:
    """The shipped candidates, then those of `extra`; an entry in `extra` replaces a shipped one of the same name."""
    entries = {entry["name"]: entry for entry in yaml.safe_load(SHIPPED.read_text())}
    if extra is not None:
        for entry in yaml.safe_load(extra.read_text()) or []:
            entries[entry["name"]] = entry
    candidates = [Candidate(**entry) for entry in entries.values()]
    for candidate in candidates:
        if not candidate.chat_template and candidate.template not in TEMPLATES:
            raise ValueError(f"candidate {candidate.name}: no chat template, and template {candidate.template!r} is not one of {sorted(TEMPLATES)}")
    return candidates
