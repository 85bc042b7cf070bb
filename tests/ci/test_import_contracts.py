"""The import contracts of `.importlinter`: the tree keeps them, and one wrong import breaks them.

Each wrong import is added to a copy of the tree (the packages, `service.py`,
`tuning.py` and the contracts), never to the tree itself; ``lint-imports``
then runs over the copy, contract by contract.
"""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

CONTRACTS = PROJECT_ROOT / ".importlinter"
SINGLE_FILE_MODULES = ("service.py", "tuning.py")


def config() -> configparser.ConfigParser:
    """The parsed `.importlinter`."""
    parser = configparser.ConfigParser()
    parser.read(CONTRACTS, encoding="utf-8")
    return parser


def root_packages() -> list[str]:
    """The packages the contracts are checked over."""
    return config()["importlinter"]["root_packages"].split()


def lint_imports(root: Path, contract: str | None = None) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the tree at ``root`` (one contract, or all), without a cache."""
    executable = shutil.which("lint-imports")
    assert executable, "lint-imports is missing: pip install -r requirements-dev.txt"
    command = [executable, "--no-cache", *(["--contract", contract] if contract else [])]
    # The copy's packages, not the project's, must be the ones found.
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, timeout=600)


def copy_tree(destination: Path) -> Path:
    """A copy of what the contracts read: the root packages, the single-file modules, the contracts."""
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in root_packages():
        shutil.copytree(PROJECT_ROOT / package, destination / package, ignore=ignored)
    for name in (*SINGLE_FILE_MODULES, CONTRACTS.name):
        shutil.copyfile(PROJECT_ROOT / name, destination / name)
    return destination


def test_the_tree_keeps_every_contract():
    done = lint_imports(PROJECT_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Contracts: (\d+) kept, 0 broken", done.stdout)


def test_the_contracts_cover_the_layers_the_design_names():
    contracts = config()
    layers = [line.strip() for line in contracts["importlinter:contract:layers"]["layers"].splitlines() if line.strip()]
    assert layers == ["benchmarks", "dashboard | deploy | training", "api", "predictions", "registry | persistence",
                      "settings", "attrition"]
    assert contracts["importlinter:contract:entry-points"]["forbidden_modules"].split() == ["service", "tuning"]
    assert contracts["importlinter:contract:acyclic"]["type"] == "acyclic_siblings"
    assert set(contracts["importlinter:contract:acyclic"]["ancestors"].split()) == set(root_packages())
    assert contracts["importlinter:contract:persistence-layers"]["layers"].split() == [
        "__main__", "cli", "personal_data", "trace", "database"]
    # Every package of the project is under the contracts.
    packages = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(root_packages())


WRONG_IMPORTS = {
    # settings under the HTTP edge again: what it was before it parsed the keys itself
    "settings imports api": ("settings/__init__.py", "from api import keys as _keys", "layers"),
    # registry and persistence are independent
    "persistence imports registry": ("persistence/database/queries.py", "import registry.aliases", "layers"),
    "api imports service": ("api/errors.py", "import service", "entry-points"),
    "the database imports the trace pipeline": (
        "persistence/database/columns.py", "from persistence.trace import metrics as _metrics", "persistence-layers"),
    # the import circle that was: the replay importing the writer that imports it
    "the replay imports the writer": (
        "persistence/trace/replay.py", "from persistence.trace.writer import TraceWriter as _TraceWriter", "acyclic"),
    # a circle no layers contract covers
    "a circle inside attrition": ("attrition/schema.py", "from attrition import extracts as _extracts", "acyclic"),
    # the outcome statistics stay testable without a page or a database
    "the evaluation statistics import Streamlit": (
        "dashboard/evaluation/metrics.py", "import streamlit as _streamlit", "dashboard-evaluation-plain"),
    "the evaluation statistics read the database": (
        "dashboard/evaluation/fairness.py", "from dashboard.queries import outcomes as _outcomes", "dashboard-layers"),
}


@pytest.mark.parametrize("name", WRONG_IMPORTS)
def test_one_wrong_import_breaks_its_contract(name: str, tmp_path: Path):
    path, line, contract = WRONG_IMPORTS[name]
    root = copy_tree(tmp_path)
    assert lint_imports(root, contract).returncode == 0, "the copy keeps the contract before the wrong import"
    with (root / path).open("a", encoding="utf-8") as module:
        module.write(f"\n{line}  # noqa: E402,F401\n")
    broken = lint_imports(root, contract)
    assert broken.returncode != 0, broken.stdout
    assert "BROKEN" in broken.stdout and "0 broken" not in broken.stdout
    assert lint_imports(root).returncode != 0, "the full run fails too"


def test_the_ci_entry_checks_the_contracts_before_the_tests():
    script = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lint = re.search(r"^lint-imports\b", script, re.MULTILINE)
    tests = re.search(r"^python3 -m pytest\b", script, re.MULTILINE)
    assert lint and tests and lint.start() < tests.start()
