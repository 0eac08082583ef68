"""Dagster resources: the log folder the pipeline reads from, how it scrubs, and the models it converts to."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import yaml
from dagster import ConfigurableResource

from finetune.candidates import Candidate, load_candidates
from finetune.train import TrainConfig
from pipeline.collect import Collection, LogFile, assemble, find_log_files, read_log_file
from pipeline.decision import DecisionConfig
from pipeline.judge import Judge, JudgeConfig, judge_from
from pipeline.demo import write_demo_logs
from pipeline.scrub import ScrubConfig
from pipeline.selection import SelectionConfig


class LogSource(ConfigurableResource):
    """The agent's log files (`SLM_LOGS_DIR`), read through a parse cache in `SLM_HOME` keyed by content hash."""

    home: str
    logs_dir: str = ""  # empty: the demo logs in SLM_HOME, written on first use
    max_line_bytes: int = 4 * 1024 * 1024
    first_day: str = "2024-01-01"  # the first daily partition: earlier calls are quarantined

    def folder(self) -> Path:
        if self.logs_dir:
            return Path(self.logs_dir)
        demo = Path(self.home) / "demo-logs"
        if not demo.exists():
            partial = demo.with_name("demo-logs.partial")
            shutil.rmtree(partial, ignore_errors=True)
            write_demo_logs(partial)
            partial.rename(demo)
        return demo

    def files(self) -> list[LogFile]:
        return find_log_files(self.folder(), self._cache_dir)

    def collect(
        self,
        files: list[LogFile] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Collection:
        """Calls and quarantined records from `files` (default: all) whose call time is in [start, end)."""
        files = self.files() if files is None else files
        reads = [read_log_file(f, self._cache_dir, self.max_line_bytes) for f in files]
        collection = assemble(files, [parse for parse, _ in reads], start, end, date.fromisoformat(self.first_day))
        collection.stats.files_parsed = sum(parsed_now for _, parsed_now in reads)
        return collection

    @property
    def _cache_dir(self) -> Path:
        return Path(self.home) / "cache" / "collect"


class PiiScrubber(ConfigurableResource):
    """How step 2 scrubs: worker processes, limits, placeholder scope, and per-deployment deny-lists and patterns."""

    processes: int = 2  # 0: in the run's own process
    batch_size: int = 64
    max_text_chars: int = 100_000
    timeout_s: float = 300.0
    scope: str = "call"  # or "session"
    deny_lists: dict[str, list[str]] = {}  # entity type -> values (user ids, names) always removed
    patterns: dict[str, list[str]] = {}  # entity type -> regexes (account numbers) always removed
    allow: list[str] = []  # regexes of whole values never removed (order ids, SKUs)
    vault_key: str = ""  # a Fernet key: keep an encrypted placeholder -> value mapping per call in `pii_vault`

    def config(self) -> ScrubConfig:
        return ScrubConfig(
            processes=self.processes,
            batch_size=self.batch_size,
            max_text_chars=self.max_text_chars,
            timeout_s=self.timeout_s,
            scope=self.scope,
            deny_lists=dict(self.deny_lists),
            patterns=dict(self.patterns),
            allow=list(self.allow),
            vault_key=self.vault_key,
        )


class Reports(ConfigurableResource):
    """Where pictures and reports are written: `SLM_HOME/reports`."""

    home: str

    def path(self, name: str) -> Path:
        folder = Path(self.home) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name


class Conversion(ConfigurableResource):
    """Steps 4–6: the candidate SLMs, the selection policy, the training settings, the decision rules, and where
    models and adapters live.

    `config_file` is YAML with optional `selection:`, `training:`, `decision:` and `judge:` sections whose keys are the
    fields of `SelectionConfig`, `TrainConfig`, `DecisionConfig` and `JudgeConfig`; what it leaves out keeps the
    default.
    """

    home: str
    candidates_file: str = ""
    config_file: str = ""

    def candidates(self) -> list[Candidate]:
        return load_candidates(Path(self.candidates_file) if self.candidates_file else None)

    def selection(self) -> SelectionConfig:
        return SelectionConfig(**self._section("selection"))

    def training(self) -> TrainConfig:
        return TrainConfig(**self._section("training"))

    def decision(self) -> DecisionConfig:
        return DecisionConfig(**self._section("decision"))

    def judge(self) -> Judge | None:
        """The optional LLM judge of text replies (`judge:` section); None when it is not configured."""
        return judge_from(JudgeConfig(**self._section("judge")))

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def adapters_root(self) -> Path:
        return Path(self.home) / "adapters"

    def _section(self, name: str) -> dict:
        if not self.config_file:
            return {}
        return (yaml.safe_load(Path(self.config_file).read_text()) or {}).get(name) or {}
