"""Settings: read once from the environment and SLM_CONFIG, defaults written in one place, the reference page
generated from them."""

from pathlib import Path

import pytest

from pipeline.settings import PickConfig, Settings, reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_configuration_page_is_the_one_generated_from_the_settings():
    assert (ROOT / "docs" / "configuration.md").read_text() == reference(), (
        "run: python -m pipeline.settings > docs/configuration.md"
    )


def test_what_a_config_file_leaves_out_keeps_the_default(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("pick: {score_sample: 4}\ntraining: {max_steps: 60}\n")
    settings = Settings.from_env({"SLM_CONFIG": str(config)})
    assert settings.pick == PickConfig(score_sample=4)
    assert (settings.training.max_steps, settings.training.min_steps) == (60, 20)
    assert Settings.from_env({}).pick == PickConfig()


def test_an_unknown_section_or_key_is_an_error_that_names_it(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("selection: {score_sample: 4}\n")
    with pytest.raises(ValueError, match=r"\['selection'\] unknown"):
        Settings.from_env({"SLM_CONFIG": str(config)})
    config.write_text("pick: {score_smaple: 4}\n")
    with pytest.raises(ValueError, match=r"unknown keys \['score_smaple'\]"):
        Settings.from_env({"SLM_CONFIG": str(config)})


def test_environment_variables_set_their_key_over_the_file(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("scrub: {processes: 4}\n")
    scrub_lists = tmp_path / "scrub.yaml"
    scrub_lists.write_text("allow: ['AC-\\d{6}']\n")
    settings = Settings.from_env(
        {
            "SLM_CONFIG": str(config),
            "SLM_SCRUB_PROCESSES": "0",
            "SLM_SCRUB_CONFIG": str(scrub_lists),
            "SLM_RETRAIN_CRON": "0 4 * * *",
            "SLM_HOME": str(tmp_path),
        }
    )
    assert (settings.scrub.processes, settings.scrub.allow) == (0, [r"AC-\d{6}"])
    assert settings.decision.retrain_cron == "0 4 * * *"
    assert settings.logs == tmp_path / "logs" and settings.warehouse == str(tmp_path / "warehouse.duckdb")


def test_the_demo_config_is_a_valid_settings_file():
    settings = Settings.from_env(
        {"SLM_CONFIG": str(ROOT / "demo" / "config.yaml"), "SLM_SCRUB_CONFIG": str(ROOT / "demo" / "scrub.yaml")}
    )
    assert settings.pick.score_sample == 4 and settings.scrub.allow
