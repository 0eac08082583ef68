"""Where the pipeline reads and writes (the storage contract in the README), taken from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path  # SLM_HOME: everything the pipeline writes
    logs_dir: Path | None  # SLM_LOGS_DIR: the agent's log files; None means the demo logs
    first_day: date  # SLM_FIRST_DAY: the first daily partition
    max_line_bytes: int  # SLM_MAX_LINE_BYTES: a longer log line is quarantined
    warehouse_url: str = ""  # SLM_WAREHOUSE: a DuckDB path or MotherDuck `md:` URL; default SLM_HOME/warehouse.duckdb
    executor: str = "multiprocess"  # SLM_EXECUTOR: multiprocess, in_process, or k8s (a pod per step)
    scrub_processes: int = 2  # SLM_SCRUB_PROCESSES: Presidio worker processes (0: in the run's process)
    scrub_scope: str = "call"  # SLM_SCRUB_SCOPE: placeholders consistent per "call" or per "session"
    scrub_config: Path | None = None  # SLM_SCRUB_CONFIG: YAML with `deny_lists` and `patterns` per entity type
    vault_key: str = ""  # SLM_VAULT_KEY: a Fernet key turns on the encrypted vault of raw values (off: none kept)
    candidates_file: Path | None = None  # SLM_CANDIDATES: YAML of more candidate SLMs (see finetune/candidates.yaml)
    config_file: Path | None = None  # SLM_CONFIG: YAML with `selection` and `training` settings for steps 4–5

    @classmethod
    def from_env(cls) -> Settings:
        logs = os.environ.get("SLM_LOGS_DIR")
        return cls(
            home=Path(os.environ.get("SLM_HOME", ".slm")).resolve(),
            logs_dir=Path(logs).resolve() if logs else None,
            first_day=date.fromisoformat(os.environ.get("SLM_FIRST_DAY", "2024-01-01")),
            max_line_bytes=int(os.environ.get("SLM_MAX_LINE_BYTES", 4 * 1024 * 1024)),
            warehouse_url=os.environ.get("SLM_WAREHOUSE", ""),
            executor=os.environ.get("SLM_EXECUTOR", "multiprocess"),
            scrub_processes=int(os.environ.get("SLM_SCRUB_PROCESSES", 2)),
            scrub_scope=os.environ.get("SLM_SCRUB_SCOPE", "call"),
            scrub_config=_path(os.environ.get("SLM_SCRUB_CONFIG")),
            vault_key=os.environ.get("SLM_VAULT_KEY", ""),
            candidates_file=_path(os.environ.get("SLM_CANDIDATES")),
            config_file=_path(os.environ.get("SLM_CONFIG")),
        )

    @property
    def warehouse(self) -> str:
        return self.warehouse_url or str(self.home / "warehouse.duckdb")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
