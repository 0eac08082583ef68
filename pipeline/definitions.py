"""The Dagster code location: every asset, its storage, and the sensor, wired for the local deployment."""

from __future__ import annotations

import yaml
from dagster import Definitions, ExecutorDefinition, in_process_executor, load_assets_from_package_module, multiprocess_executor
from dagster_duckdb import DuckDBResource

import assets
from pipeline.demo import DEMO_SCRUB_ALLOW
from pipeline.cycles import report_automation, retrain_changed_tasks, retraining
from pipeline.jobs import collect_and_scrub, convert_tasks, evaluate_tasks, find_tasks, report
from pipeline.resources import Conversion, LogSource, PiiScrubber, Reports
from pipeline.sensors import new_log_files
from pipeline.settings import Settings
from pipeline.warehouse import WarehouseIOManager


def build_definitions(settings: Settings) -> Definitions:
    """Each tabular asset becomes a table of `warehouse.duckdb` named after it."""
    return Definitions(
        assets=load_assets_from_package_module(assets),
        jobs=[collect_and_scrub, find_tasks, convert_tasks, evaluate_tasks, report],
        schedules=[retraining],
        sensors=[new_log_files, retrain_changed_tasks, report_automation],
        executor=_executor(settings.executor),
        resources={
            "io_manager": WarehouseIOManager(database=settings.warehouse, schema="main"),
            "logs": LogSource(
                home=str(settings.home),
                logs_dir=str(settings.logs_dir or ""),
                max_line_bytes=settings.max_line_bytes,
                first_day=settings.first_day.isoformat(),
            ),
            "scrubber": _scrubber(settings),
            "warehouse": DuckDBResource(database=settings.warehouse),
            "reports": Reports(home=str(settings.home)),
            "conversion": Conversion(
                home=str(settings.home),
                candidates_file=str(settings.candidates_file or ""),
                config_file=str(settings.config_file or ""),
            ),
        },
    )


def _scrubber(settings: Settings) -> PiiScrubber:
    if settings.scrub_config:
        lists = yaml.safe_load(settings.scrub_config.read_text()) or {}
    else:  # the demo shop's order ids and SKUs are not personal data; elsewhere nothing is allowed by default
        lists = {"allow": DEMO_SCRUB_ALLOW} if settings.logs_dir is None else {}
    return PiiScrubber(
        processes=settings.scrub_processes,
        scope=settings.scrub_scope,
        deny_lists=lists.get("deny_lists") or {},
        patterns=lists.get("patterns") or {},
        allow=lists.get("allow") or [],
        vault_key=settings.vault_key,
    )


def _executor(name: str) -> ExecutorDefinition:
    if name == "k8s":  # production: every step in its own pod (needs the `production` extra)
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    executors = {"multiprocess": multiprocess_executor, "in_process": in_process_executor}
    if name not in executors:
        raise ValueError(f"SLM_EXECUTOR={name!r}: expected one of multiprocess, in_process, k8s")
    return executors[name]


defs = build_definitions(Settings.from_env())
