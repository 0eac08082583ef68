"""The layout's rules, checked on the source: imports run one way, orchestration → assets → steps and ML, Dagster is
wired in two packages only, and no production code patches a library."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package → the top-level names its modules may not import
FORBIDDEN = {
    "pipeline": {
        "dagster",
        "dagster_k8s",
        "dagster_celery",
        "finetune",
        "assets",
        "orchestration",
        "demo",
        "torch",
        "transformers",
        "trl",
        "gateway",
    },
    "finetune": {"dagster", "dagster_k8s", "dagster_celery", "assets", "orchestration", "demo", "gateway"},
    "gateway": {"dagster", "dagster_k8s", "dagster_celery", "assets", "orchestration", "demo"},
    "assets": {"orchestration", "demo", "gateway"},
    "orchestration": {"demo"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / package).glob("*.py")
        for name in imports(path)
        if name.split(".")[0] in FORBIDDEN[package]
    }
    assert not wrong


def test_no_production_module_patches_a_library_or_imports_private_dagster_names():
    production = [
        p
        for package in ("pipeline", "finetune", "assets", "orchestration", "demo", "gateway")
        for p in (ROOT / package).glob("*.py")
    ]
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in production
        for name in imports(path)
        if name.startswith(("unittest.mock", "dagster._"))
    }
    assert not wrong


def test_the_code_location_loads_without_torch():
    """Each sensor tick and each run's start load the definitions: models load only in the steps that use them."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, orchestration.definitions; print(sorted({'torch', 'trl', 'transformers'} & set(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\n")[-2]
    assert loaded == "[]"
