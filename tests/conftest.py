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
    from demo.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


# The servers `make test` starts (tests/services.sh); tests that need one skip where it is absent.
POSTGRES = os.environ.get("SLM_TEST_POSTGRES")
REDIS = os.environ.get("SLM_TEST_REDIS")


@pytest.fixture
def postgres_databases():
    """Makes new, empty databases on the test PostgreSQL server, dropped afterwards: `postgres_databases()` is a
    new one's URL."""
    from orchestration.cluster import databases

    if not POSTGRES:
        pytest.skip("no PostgreSQL server: SLM_TEST_POSTGRES is not set (`make test` starts one with tests/services.sh)")
    with databases(POSTGRES) as new_database:
        yield new_database


@pytest.fixture
def postgres_url(postgres_databases) -> str:
    """A new, empty database on the test PostgreSQL server."""
    return postgres_databases()


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
