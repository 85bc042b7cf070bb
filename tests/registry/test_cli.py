"""The registry's command line, run as an ML engineer runs it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import PROJECT_ROOT
from tests.registry.conftest import MODELS_DIR


def run_registry(*args: str, models_dir=MODELS_DIR, home=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FUTURISYS_MODELS_DIR": str(models_dir)}
    if home is not None:
        env["BENTOML_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "registry", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_then_list_shows_every_model_and_the_default(tmp_path):
    first = run_registry("import", home=tmp_path / "store")
    assert first.returncode == 0 and "logistic_regression:v1" in first.stdout.split("imported:")[1].splitlines()[0]
    second = run_registry("import", home=tmp_path / "store")
    assert "imported: -" in second.stdout
    listing = run_registry("list", home=tmp_path / "store")
    assert listing.returncode == 0
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    committed = {f"{card.parent.parent.name}:{card.parent.name}" for card in MODELS_DIR.glob("*/v*/card.json")}
    assert set(lines) == committed and {"logistic_regression:v1", "gradient_boosting:v2"} <= committed
    champion = json.loads((MODELS_DIR / "aliases.json").read_text())["champion"]
    assert lines[champion].rstrip().endswith("*") and "champion" in lines[champion]


def test_promote_moves_the_champion_in_a_copy_of_models(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    moved = run_registry("promote", "random_forest:v1", models_dir=models)
    assert moved.returncode == 0 and "champion → random_forest:v1" in moved.stdout
    assert json.loads((models / "aliases.json").read_text())["champion"] == "random_forest:v1"
    assert oct((models / "aliases.json").stat().st_mode & 0o777) == "0o644"
    refused = run_registry("promote", "random_forest:v42", models_dir=models)
    assert refused.returncode == 2 and "not a model version" in refused.stderr
