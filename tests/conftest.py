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
