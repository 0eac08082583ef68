"""Every setting of the pipeline, and the only place its default is written.

`Settings.from_env()` is read once, where the Dagster code location starts (`orchestration/definitions.py`) or the
gateway starts (`gateway/__main__.py`), and passed down from there. It takes where things are from environment
variables and the tuning of each step from `SLM_CONFIG`, a YAML file with one optional section per step config below
(`scrub:`, `clustering:`, `prices:`, `pick:`, `training:`, `decision:`, `engine:`, `judge:`, `serve:`) whose keys
are that dataclass's fields; what a file leaves out keeps the default. `SLM_SCRUB_CONFIG` is a deployment's own scrub lists (`deny_lists`, `patterns`, `allow`), kept apart from
tuning because it names what a deployment protects. `python -m pipeline.settings` writes the reference page,
`docs/configuration.md`, from these dataclasses.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import math
import os
import re
import sys
import tokenize
import uuid
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path

import yaml

from pipeline.context import ContextPolicy


@dataclass(frozen=True)
class ScrubConfig:
    """Step 2: how PII and secrets are removed."""

    processes: int = 2  # Presidio worker processes; 0 analyzes in the run's own process (no time-out then)
    batch_size: int = 64  # texts per spaCy batch
    # spaCy's NER: "en_core_web_md" finds more names than "en_core_web_sm" (bench/pii_eval.py --compare)
    spacy_model: str = "en_core_web_md"
    rampart: bool = True  # the Rampart PII token classifier beside spaCy: most of the names spaCy misses
    max_text_chars: int = 100_000  # a longer text is not analyzed: its call is quarantined
    timeout_s: float = 300.0  # for one batch of texts in a worker; past it, its texts are tried one by one
    text_timeout_s: float = 60.0  # for one text tried on its own; its call is quarantined past it
    max_text_digits: int = 20_000  # a text with more digits is not analyzed (patterns on digit runs are slow)
    scope: str = "call"  # placeholders consistent per "call" or per "session"
    # a value found in one call is removed from every call of its session where the session has at most this many
    # calls (a conversation); a session id that holds more (a client's whole traffic) shares nothing
    conversation_calls: int = 200
    # a text in at least this share of the calls (and in 20 or more), its dates and times masked, is the agent's own
    # (its system prompt, its tool schemas): scrubbed of what it holds itself, but never of values found in one
    # customer's call
    static_share: float = 0.05
    deny_lists: dict[str, list[str]] = field(default_factory=dict)  # entity type -> values always removed
    patterns: dict[str, list[str]] = field(default_factory=dict)  # entity type -> regexes always removed
    allow: list[str] = field(default_factory=list)  # regexes of whole values never removed (order ids, SKUs)
    # entity type -> JSON keys whose values (at any depth under them) are removed whatever the detectors say
    personal_keys: dict[str, list[str]] = field(default_factory=lambda: {
        "PERSON": ["first_name", "last_name", "middle_name", "full_name", "given_name", "family_name", "surname",
                   "maiden_name", "passenger_name", "customer_name", "contact_name", "cardholder_name", "holder_name",
                   "guest_name", "traveler_name", "patient_name"],
        "USER_ID": ["user_id", "username", "user_name", "login", "screen_name", "handle"],
        "EMAIL_ADDRESS": ["email", "email_address", "e_mail"],
        "DATE_OF_BIRTH": ["dob", "date_of_birth", "birth_date", "birthdate", "birthday"],
        "PHONE_NUMBER": ["phone", "phone_number", "mobile", "telephone"],
        "STREET_ADDRESS": ["address", "address1", "address2", "address_line1", "address_line2", "street",
                           "street_address", "home_address", "zip", "zip_code", "postal_code", "postcode"],
    })
    # a `name` in an object with one of these keys, or under one, is a person's name (a product's `name` is not)
    person_records: list[str] = field(default_factory=lambda: [
        "passenger", "passengers", "user", "users", "customer", "customers", "contact", "contacts", "traveler",
        "travelers", "travellers", "guest", "guests", "member", "members", "employee", "employees", "patient",
        "patients", "person", "people", "owner", "author", "assignee", "sender", "recipient", "recipients",
        "attendees", "driver", "beneficiary", "dependents", "profile", "user_id", "email", "dob", "date_of_birth",
        "phone", "first_name", "last_name",
    ])
    vault_key: str = ""  # a Fernet key: keep each call's placeholder -> value mapping, encrypted; empty keeps none


@dataclass(frozen=True)
class ClusterConfig:
    """Step 3: how task signatures are clustered (chosen with `bench/cluster_eval.py`)."""

    # PCA keeps most of MiniLM's topical variance in 32 dims and makes hdbscan's neighbour searches cheap.
    dims: int = 32
    # None: max(3, round(sqrt(n) / 12)), i.e. 3 up to ~1,700 calls, 5 at 3,000, 19 at 50,000. A task needs a few
    # calls before it is worth a model, and a fixed size would split big logs into crumbs or drown small ones.
    min_cluster_size: int | None = None
    # 1 counts a point's density by its nearest neighbour only, which leaves far less noise than hdbscan's default
    # (min_samples = min_cluster_size) on MiniLM embeddings, where intents overlap at their edges.
    min_samples: int | None = 1
    # "eom" keeps the most persistent clusters; "leaf" splits into many small ones and leaves more noise.
    cluster_selection: str = "eom"
    # Clusters closer than this (Euclidean on the normalized PCA output; 0.4 is cosine ~0.92) are not split further,
    # so near-identical requests are one task and fewer of their edge points fall out as noise.
    epsilon: float = 0.4
    # hdbscan's tree searches slow down sharply past ~10,000 points in 32 dims (50,000 take minutes on 2 cores), so
    # larger inputs are clustered on an even sample of this many points and the rest join the cluster they fall in.
    sample: int = 10_000
    # Calls whose system prompts and tools embed at least this close (cosine) are one agent's: its text replies are
    # grouped together.
    agent_similarity: float = 0.9
    # An agent's text replies are split into the parts hdbscan finds only where the parts follow different kinds of
    # request (normalized mutual information between part and what the reply follows: the first user message, a
    # later one, which tool's result). Parts by topic follow the same requests: 0.00 on the demo's summaries, plans
    # and intents; parts that do different jobs do not: 0.35 on the airline agent.
    split_context: float = 0.2
    # A text reply that no other reply of its agent is at least this similar to (cosine) is an outlier: unassigned.
    outlier_similarity: float = 0.5


@dataclass(frozen=True)
class Prices:
    """Step 3: LLM prices per 1M tokens (gpt-4o list prices), for the spend of a call whose log has no cost."""

    input_usd: float = 2.50
    output_usd: float = 10.00


@dataclass(frozen=True)
class PickConfig:
    """Step 4: which candidate SLM a task gets, and how its calls are split and read (steps 4–6)."""

    held_out_share: float = 0.2  # the newest share of a task's calls, never trained on: what steps 4 and 6 score
    min_calls: int = 30  # a task with fewer is skipped: too little to train on and judge
    score_sample: int = 6  # held-out calls each candidate is scored on, zero-shot and few-shot
    few_shot: int = 2  # nearest training calls shown as examples
    policy: str = "score_per_cost"  # or "best_score"
    pins: dict[str, str] = field(default_factory=dict)  # task id → candidate name, chosen whatever the scores
    candidates: list[str] = field(default_factory=list)  # the registry's candidates to consider; empty: all of them
    max_new_tokens: int = 256  # generation cap when scoring; longer logged text replies are judged on as many tokens
    # where a task's logged prompts are longer (p50, in the candidate's tokens) or longer than it holds, candidates
    # are scored on them pruned, as the adapter reads them (a 6k-token prompt takes 6-9 s to read on 2 cores)
    score_prompt_tokens: int = 2048
    prune_share: float = 0.9  # a system line or tool set in this share of a task's calls is static, pruned
    windows: list[int] = field(default_factory=lambda: [2, 4, 8, 0])  # conversation windows tried, 0 = all of it
    window_margin: float = 0.02  # the smallest window scoring within this of the best tried is chosen
    # ... then widened until it keeps, for this share of the task's tool-call replies, every argument value the
    # reply copies from the conversation (an id the customer gave three turns earlier)
    window_coverage: float = 0.95
    # a tool-call argument whose logged value is a word of the call's input in this share of the training calls is
    # copied: generated as one of the call's own words of its shape (pipeline.copying)
    copy_share: float = 0.9
    list_items: int = ContextPolicy.list_items  # tool-result lists are cut to this many items
    tool_result_chars: int = ContextPolicy.tool_result_chars  # and tool results to this many characters

    def context(self, window: int = 0) -> ContextPolicy:
        return ContextPolicy(window, self.list_items, self.tool_result_chars)


@dataclass(frozen=True)
class TrainConfig:
    """Step 5: LoRA training of a task's adapter."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0  # at 0.05 the dropout masks alone took 14% of a CPU step, and more memory
    learning_rate: float = 1e-3  # of the A matrices; LoRA on a 135M model: 2e-4 had barely moved the loss in 30 steps
    # LoRA+ (Hayou et al., 2024): the B matrices at 16x the rate. On the demo's ticket routing it scored 0.90-0.95
    # after 36-48 steps and 1.00 after 60 on 73 held-out calls, where plain LoRA at 2e-3 scored 0.79 after 48.
    loraplus_ratio: float = 16.0  # 1: plain LoRA
    # Constant after warmup: with a linear decay to zero, half of a short training runs at too small a rate to learn
    # the queue and priority (0.60 after 48 steps, against 0.80 at a constant rate, plain LoRA).
    schedule: str = "constant_with_warmup"
    batch_size: int = 4
    epochs: float = 2.0
    min_steps: int = 20
    # the step bound is loose: a task trains until it has learnt (below), or until its time budget is spent
    max_steps: int = 300
    max_length: int = 2048  # tokens per example; longer calls are left out of training, counted
    max_tokens: int = 0  # stop once training has read this many tokens (0: no bound): long replies cost more steps' time
    max_seconds: float = 300.0  # stop once training has run this long (0: no bound): a task's time, whatever its calls
    # stop once the mean loss of the last `converged_steps` steps is below `stop_loss` (0: never) and each of them
    # predicted at least `stop_accuracy` of its reply tokens (teacher-forced token accuracy)
    stop_loss: float = 0.01
    stop_accuracy: float = 1.0
    # In the first epoch every batch is calls not yet trained on, so its loss and accuracy are held-out estimates.
    # The loss alone misleads on short structured replies, where it sits on one or two deciding tokens among 20-30:
    # the demo's ticket routing had a mean loss of 0.013 over 4 steps while 15% of held-out tickets went to the wrong
    # queue or priority. Every reply token right over 8 steps (32 calls) catches that.
    converged_steps: int = 8
    # Above this expected share of padding, batches are packed into one sequence instead (padding-free, the examples
    # kept apart by their position ids): order lookups with a 4-message window trained 2.0x faster. Below it, padding
    # costs less than attention over the packed sequence: planning's packed steps were 12% slower.
    padding_free_share: float = 0.5
    # Examples longer than this (the median, in tokens) train one at a time, their gradients accumulated over
    # `batch_size`: a batch of one has no padding mask, so attention takes SDPA's causal fast path. On 2 cores that
    # read 420-1,000-token examples 1.5-1.9x faster (the long demo's reservation lookups: 21.4 s a step -> 11.6 s);
    # shorter ones train faster padded together (1.4x at 100 tokens, 1.15x at 300).
    unpadded_length: int = 384
    seed: int = 0

    def steps(self, examples: int) -> int:
        return min(self.max_steps, max(self.min_steps, math.ceil(self.epochs * examples / self.batch_size)))


@dataclass(frozen=True)
class DecisionConfig:
    """Step 6: when a task can move to its SLM, and when it is trained again."""

    # mean held-out score a fine-tuned adapter must reach, by reply kind (see pipeline/metrics.py for the scores)
    thresholds: dict[str, float] = field(default_factory=lambda: {"tool": 0.9, "json": 0.9, "text": 0.8})
    min_held_out: int = 20  # fewer scored calls cannot show a task is replaceable
    interval_margin: float = 0.1  # nor a mean whose 95% interval reaches further than this below the threshold
    # A task whose held-out part is smaller than `min_held_out` is judged by cross-validation instead: its calls cut
    # into this many time-ordered folds, an adapter trained on all but each, so every call is scored once unseen.
    folds: int = 5
    eval_sample: int = 24  # held-out calls each model answers: bounds the step's time on a CPU
    retrain_growth: float = 0.25  # retrain when the task's calls grew by this share since the adapter's data
    retrain_drop: float = 0.05  # or when the promoted adapter's score fell by this much since its promotion
    retrain_cron: str = "0 3 * * 1"  # when a retraining cycle starts (UTC): weekly, Monday 03:00


@dataclass(frozen=True)
class EngineConfig:
    """Steps 4, 6 and the export: the engine that generates, so that the scores are those of what is served."""

    # "transformers" (the adapter merged, bf16 where the CPU computes it: on the idle 2-core build machine it
    # generated batches twice as fast as CTranslate2, and `make demo` took 25 min instead of 40) or "ctranslate2"
    # (merged, int8: one request at a time 1.35x as fast, 78% of replies the same, scores within 0.01;
    # bench/engines.py)
    engine: str = "transformers"
    compute_type: str = "int8"  # CTranslate2's weights on a CPU: int8, int16 or float32 (Gemma-3 is closer to bf16 in float32)
    threads: int = 0  # CPU threads per generation; 0: the engine's default
    # transformers: a prompt answered alone drafts this many tokens at a time from its own text, checked by the model
    # in one step (prompt lookup decoding; the replies stay the model's greedy ones); 0: one token a step
    prompt_lookup: int = 10
    # transformers: a structured reply answered alone feeds the model, at each step, the tokens its schema forces
    # after the one the model chose, so the model steps only where there is a choice (a routing tool call: 3 to 7
    # model steps instead of 26; the same replies); false: one token a step
    forced_ahead: bool = True
    # transformers: the start that a task's prompts share (its instructions, every tool's schema) is read once and
    # its model state kept, so a request reads only its own tokens (a routing call read 83 of its 282 tokens); the
    # same replies. false: every prompt read whole
    shared_start: bool = True


@dataclass(frozen=True)
class JudgeConfig:
    """Step 6, optional: an LLM that rates free-text replies (`pipeline/judge.py`); off while `base_url` is empty."""

    base_url: str = ""  # an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or a local vLLM
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key, so that no key sits in a file
    timeout_s: float = 60.0


@dataclass(frozen=True)
class ServeConfig:
    """The gateway (`gateway/`): where the LLM is, how calls are routed to adapters, and when a task changes mode."""

    host: str = "127.0.0.1"  # the address the gateway listens on; 0.0.0.0 to serve other machines
    port: int = 8400
    upstream_base_url: str = ""  # the LLM: any OpenAI-compatible endpoint, e.g. https://api.openai.com/v1
    upstream_api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding its key; the key is never logged
    upstream_timeout_s: float = 120.0
    # vLLM's OpenAI server with one LoRA module per task (`pipeline/vllm.py` writes its config; `{candidate}` in the
    # URL stands for the base model's name): adapters answer there, the request's `model` naming the task; empty: they
    # answer in the gateway's own process
    vllm_base_url: str = ""
    min_confidence: float = 0.8  # a call the router assigns with less confidence goes to the LLM
    latency_budget_s: float = 10.0  # an adapter answer slower than this is abandoned and the LLM answers instead
    max_body_bytes: int = 4 * 1024 * 1024  # a larger request body is refused (413)
    # task id -> mode (llm, shadow, canary:<share>, slm), over what step 6 decided; for a task to stay where you put it
    modes: dict[str, str] = field(default_factory=dict)
    # share of the calls an adapter serves (slm, canary) also answered by the LLM in the background, so that live
    # agreement is still measured after promotion and a task can fall back to the LLM when it drops
    audit_share: float = 0.05
    live_min_calls: int = 50  # live pairs a task needs before its live agreement can move it between shadow and slm
    live_window: int = 500  # live agreement is the mean over the task's latest this many pairs
    modes_cron: str = "15 * * * *"  # when live agreement is scored and the modes updated (UTC): hourly


SECTIONS = {"scrub": ScrubConfig, "clustering": ClusterConfig, "prices": Prices, "pick": PickConfig,
            "training": TrainConfig, "decision": DecisionConfig, "engine": EngineConfig, "judge": JudgeConfig,
            "serve": ServeConfig}
SCRUB_LISTS = ("deny_lists", "patterns", "allow")
# Environment variables that set one key of a section, for what a deployment changes without a file.
ENV_OVERRIDES = {"SLM_SCRUB_PROCESSES": ("scrub", "processes"), "SLM_SCRUB_SCOPE": ("scrub", "scope"),
                 "SLM_VAULT_KEY": ("scrub", "vault_key"), "SLM_RETRAIN_CRON": ("decision", "retrain_cron"),
                 "SLM_UPSTREAM_BASE_URL": ("serve", "upstream_base_url"), "SLM_SERVE_PORT": ("serve", "port")}


@dataclass(frozen=True)
class Settings:
    """Where the pipeline reads and writes, and each step's config."""

    home: Path = Path(".slm")  # SLM_HOME: everything the pipeline writes
    logs_dir: Path | None = None  # SLM_LOGS_DIR: the agent's log files; default SLM_HOME/logs
    first_day: date = date(2024, 1, 1)  # SLM_FIRST_DAY: the first daily partition; earlier calls are quarantined
    max_line_bytes: int = 4 * 1024 * 1024  # SLM_MAX_LINE_BYTES: a longer log line is quarantined
    # SLM_WAREHOUSE: a DuckDB file, or a PostgreSQL database (postgresql://user:password@host:port/db); default SLM_HOME/warehouse.duckdb
    warehouse_url: str = ""
    # SLM_EXECUTOR: multiprocess, in_process, celery (steps on Celery workers), or k8s (a pod per step)
    executor: str = "multiprocess"
    celery_broker: str = ""  # SLM_CELERY_BROKER: the Celery executor's broker and result store, e.g. redis://host:6379/0
    candidates_file: Path | None = None  # SLM_CANDIDATES: YAML of more candidate SLMs (see finetune/candidates.yaml)
    scrub: ScrubConfig = ScrubConfig()
    clustering: ClusterConfig = ClusterConfig()
    prices: Prices = Prices()
    pick: PickConfig = PickConfig()
    training: TrainConfig = TrainConfig()
    decision: DecisionConfig = DecisionConfig()
    engine: EngineConfig = EngineConfig()
    judge: JudgeConfig = JudgeConfig()
    serve: ServeConfig = ServeConfig()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Environment variables (`SLM_*`, see the fields' comments and `ENV_OVERRIDES`) over `SLM_CONFIG` over the
        defaults."""
        env = os.environ if env is None else env
        sections = _yaml(env.get("SLM_CONFIG"), "SLM_CONFIG")
        _check_keys(sections, SECTIONS, "SLM_CONFIG: sections")
        values = {name: dict(sections.get(name) or {}) for name in SECTIONS}
        lists = _yaml(env.get("SLM_SCRUB_CONFIG"), "SLM_SCRUB_CONFIG")
        _check_keys(lists, SCRUB_LISTS, "SLM_SCRUB_CONFIG: keys")
        values["scrub"].update({key: value for key, value in lists.items() if value})
        for variable, (section, key) in ENV_OVERRIDES.items():
            if env.get(variable):
                kind = type(getattr(SECTIONS[section](), key))
                values[section][key] = kind(env[variable])
        configs = {name: _config(kind, values[name], f"SLM_CONFIG {name}") for name, kind in SECTIONS.items()}
        defaults = cls()
        home = Path(env.get("SLM_HOME", defaults.home)).resolve()
        return cls(
            home=home,
            logs_dir=Path(env["SLM_LOGS_DIR"]).resolve() if env.get("SLM_LOGS_DIR") else None,
            first_day=date.fromisoformat(env["SLM_FIRST_DAY"]) if env.get("SLM_FIRST_DAY") else defaults.first_day,
            max_line_bytes=int(env.get("SLM_MAX_LINE_BYTES", defaults.max_line_bytes)),
            warehouse_url=env.get("SLM_WAREHOUSE", defaults.warehouse_url),
            executor=env.get("SLM_EXECUTOR", defaults.executor),
            celery_broker=env.get("SLM_CELERY_BROKER", defaults.celery_broker),
            candidates_file=Path(env["SLM_CANDIDATES"]) if env.get("SLM_CANDIDATES") else None,
            **configs,
        )

    @property
    def logs(self) -> Path:
        return self.logs_dir or self.home / "logs"

    @property
    def warehouse(self) -> str:
        return self.warehouse_url or str(self.home / "warehouse.duckdb")

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def secrets_dir(self) -> Path:
        """The deployment's own keys (the session-id key), readable by its owner only."""
        return self.home / "secrets"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def engines_dir(self) -> Path:
        """Models converted for a serving engine, found again by what they were made of."""
        return self.home / "engines"

    @property
    def serving_dir(self) -> Path:
        """What the gateway reads: the router (step 3), each task's mode (step 6), and each promoted adapter exported
        for its engine (`<task>/`, the export)."""
        return self.home / "serving"

    def report_file(self, name: str) -> Path:
        """A file under SLM_HOME/reports, the folder made on first use."""
        folder = self.home / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def write_report(self, name: str, content: str | bytes) -> Path:
        """Write a report file whole: into a file of this run's own, then renamed over the old one, so that runs at
        once never write the same file and a reader sees one report or the other."""
        path = self.report_file(name)
        partial = path.with_name(f".{name}.{uuid.uuid4().hex}.partial")
        partial.write_bytes(content.encode() if isinstance(content, str) else content)
        partial.replace(path)
        return path


def _yaml(path: str | None, variable: str) -> dict:
    if not path:
        return {}
    content = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{variable}={path}: expected a mapping of sections, found {type(content).__name__}")
    return content


def _check_keys(found: dict, allowed, what: str) -> None:
    unknown = set(found) - set(allowed)
    if unknown:
        raise ValueError(f"{what} {sorted(unknown)} unknown; expected some of {sorted(allowed)}")


def _config(kind: type, values: dict, where: str):
    unknown = set(values) - {f.name for f in fields(kind)}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; the keys are the fields of {kind.__name__}")
    return kind(**values)


# --- the reference page ------------------------------------------------------------------------------------


def reference() -> str:
    """docs/configuration.md: every setting, its default and what it does, from the dataclasses above."""
    lines = [
        "# Configuration", "",
        "Generated by `python -m pipeline.settings > docs/configuration.md` from `pipeline/settings.py`, the one place",
        "where each default is written; a test checks that this page matches it.", "",
        "## Where things are: environment variables", "",
        "| variable | default | what it is |", "|---|---|---|",
    ]
    for name, (default, doc) in _documented(Settings).items():
        if name in SECTIONS:
            continue
        variable, _, text = doc.partition(": ")
        lines.append(f"| `{variable}` | `{default}` | {text} |")
    lines += ["| `SLM_CONFIG` | | YAML with the sections below |",
              "| `SLM_SCRUB_CONFIG` | | YAML of the deployment's scrub lists: `deny_lists`, `patterns`, `allow` |"]
    lines += [f"| `{variable}` | | sets `{section}.{key}` |" for variable, (section, key) in ENV_OVERRIDES.items()]
    for section, kind in SECTIONS.items():
        lines += ["", f"## `{section}:` ({kind.__name__})", "", inspect.getdoc(kind) or "", "",
                  "| key | default | what it does |", "|---|---|---|"]
        lines += [f"| `{name}` | `{default}` | {doc} |" for name, (default, doc) in _documented(kind).items()]
    return "\n".join(lines) + "\n"


def _documented(kind: type) -> dict[str, tuple[str, str]]:
    """Field → (default, comment): the field's own end-of-line comment, else the comment block just above it."""
    comments, block = {}, []
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(kind)).readline)
    line_of_field = {}
    for token in tokens:
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("# ").strip()
            if token.start[0] in line_of_field:
                comments[line_of_field[token.start[0]]] = text
            else:
                block.append(text)
        elif token.type == tokenize.NAME and token.start[1] == 4 and token.line.strip().split(":")[0].isidentifier():
            name = token.line.strip().split(":")[0]
            if re.match(rf"\s{{4}}{name}\s*:", token.line):
                line_of_field[token.start[0]] = name
                if block:
                    comments[name] = " ".join(block)
                block = []
        elif token.type == tokenize.NL and not token.line.strip():
            block = []
    return {f.name: (_default(f), comments.get(f.name, "").replace("|", "\\|")) for f in fields(kind)}


def _default(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if dataclasses.is_dataclass(value):
        return type(value).__name__
    return "" if value == "" else str(value)


if __name__ == "__main__":
    sys.stdout.write(reference())
