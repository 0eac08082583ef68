"""The collect step through Dagster: real materializations into DuckDB, and the new-logs sensor."""

import importlib
import json
from contextlib import nullcontext
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, build_sensor_context, evaluate_automation_conditions, partition_loading_context
from dagster._config import process_config

from demo.logs import write_demo_logs
from orchestration.definitions import build_definitions
from orchestration.partitions import RANGE_END_TAG, RANGE_START_TAG
from orchestration.sensors import new_log_files, retrain_changed_tasks
from pipeline.collect import LogFolder
from pipeline.settings import DecisionConfig, PickConfig, ScrubConfig, Settings, TrainConfig
from pipeline.warehouse import open_warehouse

DAY = 86400
NOV_4 = 1762300000  # 2025-11-04 23:46:40 UTC


def record(user: str, reply: str, timestamp: int) -> str:
    return json.dumps(
        {
            "timestamp": timestamp,
            "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": user}]},
            "response": {"model": "gpt-4o", "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]},
        }
    )


def settings_for(tmp_path: Path, warehouse_url: str = "") -> Settings:
    (tmp_path / "logs").mkdir(exist_ok=True)
    return Settings(
        home=tmp_path / "home", logs_dir=tmp_path / "logs", first_day=date(2024, 1, 1), max_line_bytes=100_000,
        warehouse_url=warehouse_url, scrub=ScrubConfig(processes=0),
    )


def materialize_days(settings: Settings, first: str, last: str, instance: DagsterInstance | None = None):
    defs = build_definitions(settings)
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last}
    with DagsterInstance.ephemeral() if instance is None else nullcontext(instance) as instance:
        return defs.resolve_job_def("collect_and_scrub").execute_in_process(instance=instance, tags=tags)


def table(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(settings.warehouse, read_only=True) as warehouse:
        return warehouse.execute(sql).fetchall()


def test_collect_and_scrub_materialize_their_tables_in_the_warehouse(tmp_path):
    settings = settings_for(tmp_path)
    email = "my address is jane.doe@example.com"
    lines = [record(email, "x", NOV_4), record(email, "x", NOV_4), record("b", "y", NOV_4 + DAY),
             f'{{"timestamp": {NOV_4}, "broken": "jane.doe@example.com"']
    (tmp_path / "logs" / "calls.jsonl").write_text("\n".join(lines) + "\n")

    result = materialize_days(settings, "2025-11-04", "2025-11-05")

    assert result.success
    assert table(settings, "select response_text, occurrences from raw_calls order by called_at") == [("x", 2), ("y", 1)]
    assert table(settings, "select json_extract_string(messages, '$[0].content') from clean_calls order by called_at") == [
        ("my address is <EMAIL_ADDRESS_1>",),
        ("b",),
    ]
    assert table(settings, "select entity_type, count from pii_audit") == [("EMAIL_ADDRESS", 1)]
    [(step, line, reason, excerpt)] = table(settings, "select step, source_line, reason, excerpt from quarantine")
    assert (step, line, reason) == ("collect", 4, "malformed JSON (Expecting ',' delimiter at character 59)")
    assert "jane.doe" not in excerpt and "<EMAIL_ADDRESS_1>" in excerpt
    events = [m for m in result.get_asset_materialization_events() if m.asset_key.path == ["raw_calls"]]
    assert sorted(e.partition for e in events) == ["2025-11-04", "2025-11-05"]
    metadata = events[0].materialization.metadata
    assert metadata["reconciliation"].value.endswith(
        " bytes read, 0 unread; 4 records read, 0 unaccounted; 4 on these days = 2 kept + 1 duplicates + 1 quarantined"
    )


def test_materializing_a_day_again_replaces_its_rows_and_leaves_other_days(tmp_path, warehouse_url):
    settings = settings_for(tmp_path, warehouse_url)
    logs = tmp_path / "logs"
    (logs / "day1.jsonl").write_text(record("a", "x", NOV_4) + "\n" + record("b", "y", NOV_4 + DAY) + "\n")
    assert materialize_days(settings, "2025-11-04", "2025-11-05").success

    (logs / "day2-late.jsonl").write_text(record("c", "z", NOV_4 + DAY + 60) + "\n")
    assert materialize_days(settings, "2025-11-05", "2025-11-05").success

    for name in ("raw_calls", "clean_calls"):
        rows = open_warehouse(settings.warehouse).read(name).sort_values("called_at")
        assert list(zip(rows["called_at"].dt.strftime("%Y-%m-%d"), rows["response_text"])) == [
            ("2025-11-04", "x"), ("2025-11-05", "y"), ("2025-11-05", "z")], name


def test_sensor_asks_for_the_days_of_new_files_only_once(tmp_path):
    settings = settings_for(tmp_path)
    logs = tmp_path / "logs"
    source = LogFolder.of(settings)
    (logs / "a.jsonl").write_text(record("a", "x", NOV_4) + "\n" + record("b", "y", NOV_4 + 2 * DAY) + "\n")

    first = new_log_files(build_sensor_context(resources={"logs": source}))
    [request] = first.run_requests
    assert request.tags[RANGE_START_TAG] == "2025-11-04"
    assert request.tags[RANGE_END_TAG] == "2025-11-06"

    again = new_log_files(build_sensor_context(resources={"logs": source}, cursor=first.cursor))
    assert not getattr(again, "run_requests", None)

    (logs / "b.jsonl").write_text(record("c", "z", NOV_4 + 9 * DAY) + "\n")
    later = new_log_files(build_sensor_context(resources={"logs": source}, cursor=first.cursor))
    [request] = later.run_requests
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2025-11-13", "2025-11-13")


def test_definitions_load_with_the_collect_assets_and_the_sensor():
    defs = build_definitions(Settings.from_env())
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_calls", "raw_quarantine", "clean_calls", "pii_audit", "quarantine"} <= keys
    assert defs.resolve_sensor_def("new_log_files")


def test_production_is_one_config_away(monkeypatch):
    """The Kubernetes executor, and an instance file with Postgres storage that Dagster's schema accepts."""
    from dagster._core.instance.config import dagster_instance_config

    monkeypatch.setenv("SLM_EXECUTOR", "k8s")
    defs = build_definitions(Settings.from_env())
    assert defs.resolve_job_def("collect_and_scrub").executor_def.name == "k8s"
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "SLM_IMAGE", "SLM_BUCKET"):
        monkeypatch.setenv(name, "x")
    config, _ = dagster_instance_config(str(Path(__file__).parents[1] / "deploy"))
    assert "postgres" in config["storage"]
    for section in ("run_coordinator", "run_launcher", "compute_logs"):  # the schema above does not check these
        plugin = getattr(importlib.import_module(config[section]["module"]), config[section]["class"])
        assert process_config(plugin.config_type(), config[section]["config"]).success, section


def test_on_kubernetes_the_training_step_asks_for_a_gpu():
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    job = build_definitions(Settings.from_env({"SLM_EXECUTOR": "k8s"})).resolve_job_def("convert_tasks")
    step = get_user_defined_k8s_config(job.graph.node_named("adapters").tags)  # what the executor reads
    pod = construct_dagster_k8s_job(DagsterK8sJobConfig(job_image="slm", dagster_home="/opt/dagster"), ["dagster"],
                                    "step", user_defined_k8s_config=step).spec.template.spec
    assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert get_user_defined_k8s_config(job.graph.node_named("picks").tags).container_config == {}


def test_the_helm_values_run_the_code_location_with_the_production_instances_queue_and_database_driver():
    deploy = Path(__file__).parents[1] / "deploy"
    values = yaml.safe_load((deploy / "helm-values.yaml").read_text())
    instance = yaml.safe_load((deploy / "dagster.yaml").read_text())
    [location] = values["dagster-user-deployments"]["deployments"]
    assert location["dagsterApiGrpcArgs"] == ["--module-name", "orchestration.definitions"]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == instance["run_coordinator"]["config"]["max_concurrent_runs"]
    assert [(limit["key"], limit.get("value"), limit["limit"]) for limit in queue["tagConcurrencyLimits"]] == [
        (limit["key"], limit.get("value"), limit["limit"])
        for limit in instance["run_coordinator"]["config"]["tag_concurrency_limits"]]
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for pods in (location, launcher):  # the code server and every run see the same SLM_HOME
        assert pods["volumeMounts"] == [{"name": "slm-home", "mountPath": "/var/lib/slm"}]
        assert pods["volumes"][0]["persistentVolumeClaim"] == {"claimName": "slm-home"}
        assert pods["envConfigMaps"] == [{"name": "slm-env"}] and pods["envSecrets"] == [{"name": "slm-secrets"}]


def test_the_celery_executor_sends_steps_to_the_broker_the_workers_read(monkeypatch):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("SLM_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="SLM_CELERY_BROKER"):
        build_definitions(Settings.from_env())
    monkeypatch.setenv("SLM_CELERY_BROKER", "redis://broker:6379/0")
    executor = build_definitions(Settings.from_env()).resolve_job_def("convert_tasks").executor_def
    assert executor.name == "celery"
    workers = get_validated_config(str(Path(__file__).parents[1] / "deploy" / "celery.yaml"))
    assert (workers["broker"], workers["backend"]) == ("redis://broker:6379/0", "redis://broker:6379/0")


def test_runs_queue_locally_and_at_most_one_that_loads_a_model_runs_at_once(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": "slm/loads-model", "limit": 1},
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
    ]
    defs = build_definitions(Settings.from_env())
    loads_model = {job: defs.resolve_job_def(job).tags.get("slm/loads-model") for job in ("convert_tasks", "evaluate_tasks", "find_tasks")}
    assert loads_model == {"convert_tasks": "true", "evaluate_tasks": "true", "find_tasks": None}


def test_scrub_deny_lists_and_patterns_come_from_the_deployment_file(tmp_path, monkeypatch):
    path = tmp_path / "scrub.yaml"
    path.write_text("deny_lists:\n  PERSON: [Quinby]\npatterns:\n  ACCOUNT_NUMBER: ['ACCT-\\d{8}']\nallow: ['T-\\d+']\n")
    monkeypatch.setenv("SLM_SCRUB_CONFIG", str(path))
    config = build_definitions(Settings.from_env()).resources["settings"].scrub
    assert (config.deny_lists, config.patterns) == ({"PERSON": ["Quinby"]}, {"ACCOUNT_NUMBER": [r"ACCT-\d{8}"]})
    assert config.allow == [r"T-\d+"]


def test_without_a_scrub_file_nothing_is_allowed_through(monkeypatch):
    monkeypatch.delenv("SLM_SCRUB_CONFIG", raising=False)
    assert build_definitions(Settings.from_env()).resources["settings"].scrub.allow == []


def test_demo_logs_become_tasks_with_a_partition_each_and_a_map(tmp_path):
    settings = settings_for(tmp_path)
    write_demo_logs(settings.logs_dir, calls=400, days=2)
    with DagsterInstance.ephemeral() as instance:
        assert materialize_days(settings, "2026-11-02", "2026-11-03", instance).success
        result = build_definitions(settings).resolve_job_def("find_tasks").execute_in_process(instance=instance)
        assert result.success
        task_ids = {task_id for (task_id,) in table(settings, "select task_id from tasks")}
        assert len(task_ids) >= 4
        assert set(instance.get_dynamic_partitions("task")) == task_ids
    clustered = table(settings, "select count(*), count(distinct task_id) from task_clusters")[0]
    assert clustered[0] == table(settings, "select count(*) from clean_calls")[0][0]
    # the router step 3 writes for the gateway agrees with step 3 on the calls it held out
    [(routed, agreeing)] = table(settings, "select sum(routed), sum(agreeing) from task_router where task_id != 'unassigned'")
    assert agreeing >= 0.95 * routed > 0 and (settings.serving_dir / "router.joblib").exists()
    assert (settings.home / "reports" / "task_map.png").read_bytes()[:4] == b"\x89PNG"


def test_with_a_vault_key_the_raw_values_are_sealed_in_pii_vault(tmp_path):
    from dataclasses import replace

    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    settings = settings_for(tmp_path)
    settings = replace(settings, scrub=replace(settings.scrub, vault_key=key))
    (tmp_path / "logs" / "calls.jsonl").write_text(record("mail jane.doe@example.com", "x", NOV_4) + "\n")
    assert materialize_days(settings, "2025-11-04", "2025-11-04").success
    [(sealed,)] = table(settings, "select sealed from pii_vault")
    assert json.loads(Fernet(key.encode()).decrypt(sealed.encode())) == {"<EMAIL_ADDRESS_1>": "jane.doe@example.com"}


def test_all_six_steps_and_the_export_materialize_on_a_small_log_with_a_tiny_model_and_a_second_cycle_retrains_only_what_changed(tmp_path, tiny_checkpoint):
    from dataclasses import replace


    (tmp_path / "candidates.yaml").write_text(
        f"- {{name: tiny, source: {{folder: {tiny_checkpoint}}}, architecture: llama, parameters: 100000, context_length: 2048,"
        " license: x, chat_template: true, tool_calling: true, serving_usd_per_1m_tokens: 0.01}\n"
    )
    settings = replace(
        settings_for(tmp_path), candidates_file=tmp_path / "candidates.yaml",
        pick=PickConfig(candidates=["tiny"], min_calls=10, score_sample=2), training=TrainConfig(min_steps=2, max_steps=2),
        decision=DecisionConfig(eval_sample=4, min_held_out=2, thresholds={"tool": 0.0, "json": 0.0, "text": 0.0}),
    )
    write_demo_logs(settings.logs_dir, calls=300, days=2)
    defs = build_definitions(settings)
    with DagsterInstance.ephemeral() as instance:
        assert materialize_days(settings, "2026-11-02", "2026-11-03", instance).success
        assert defs.resolve_job_def("find_tasks").execute_in_process(instance=instance).success
        [(task_id,)] = table(settings, "select task_id from tasks order by calls desc limit 1")
        assert defs.resolve_job_def("convert_tasks").execute_in_process(instance=instance, partition_key=task_id).success
        assert defs.resolve_job_def("report").execute_in_process(instance=instance).success

        assert table(settings, "select candidate, chosen from picks") == [("tiny", True)]
        assert table(settings, "select version, steps from adapters") == [(1, 2)]
        variants = table(settings, "select variant, adapter_version, promoted, replaceable from evaluations order by variant")
        assert variants == [("adapter", 1, True, True), ("few_shot", 0, False, True), ("zero_shot", 0, False, True)]
        assert defs.resolve_job_def("update_serving").execute_in_process(instance=instance).success
        assert table(settings, f"select mode from serving_modes where task_id = '{task_id}'") == [("shadow",)]
        assert json.loads((settings.serving_dir / "modes.json").read_text())[task_id]["adapter_version"] == 1
        report = (settings.home / "reports" / "conversion_report.md").read_text()
        assert "1 of" in report and f"| {task_id}" in report
        assert (settings.home / "reports" / "conversion_report.html").exists()
        served = json.loads((settings.serving_dir / task_id / "manifest.json").read_text())
        assert (served["version"], served["engine"], served["replaceable"]) == (1, "transformers", True)

        # declarative automation: a new evaluation of the task brings the report up to date, the other tasks
        # (never evaluated) notwithstanding
        settled = evaluate_automation_conditions(defs=defs, instance=instance)
        assert settled.total_requested == 0
        assert defs.resolve_job_def("evaluate_tasks").execute_in_process(instance=instance, partition_key=task_id).success
        after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
        assert after.total_requested == 1 and after.get_num_requested(AssetKey("conversion_report")) == 1

        context = build_sensor_context(instance=instance, resources=defs.resources, repository_def=defs.get_repository_def())
        with partition_loading_context(dynamic_partitions_store=instance):  # the daemon does this for a live sensor
            requests = retrain_changed_tasks.evaluate_tick(context).run_requests
    jobs = {r.partition_key: (r.job_name, r.tags["slm/retrain"]) for r in requests}
    assert jobs[task_id] == ("evaluate_tasks", "no")
    assert all(job == ("convert_tasks", "new task: no adapter yet") for t, job in jobs.items() if t != task_id)
