"""The registry's command line, run as an ML engineer runs it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import PROJECT_ROOT
from registry.trust import TrustedManifest
from tests.registry.conftest import MODELS_DIR, copy_version
from tests.registry.test_trust import plant_exploit


def run_registry(*args: str, models_dir=MODELS_DIR, home=None, manifest=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FUTURISYS_MODELS_DIR": str(models_dir)}
    if manifest is not None:
        env["FUTURISYS_TRUSTED_MANIFEST"] = str(manifest)
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


def test_import_names_each_refused_version_and_its_reason_and_exits_1(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    plant_exploit(models, "evil", tmp_path / "exploit-ran")
    (models / "headless" / "v1").mkdir(parents=True)
    done = run_registry("import", models_dir=models, home=tmp_path / "store")
    assert done.returncode == 1 and "logistic_regression:v1" in done.stdout
    refusals = sorted(line for line in done.stderr.splitlines() if line.startswith("refused "))
    assert refusals[0].startswith("refused evil:v1: evil:v1 is not in the trusted manifest")
    assert refusals[1] == "refused headless:v1: no card.json; no model.joblib"
    assert not (tmp_path / "exploit-ran").exists()


def test_promote_pins_a_new_version_in_the_manifest_the_setting_names(tmp_path, manifest_path):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    copy_version(models, "candidate")
    done = run_registry("promote", "candidate:v1", "--alias", "challenger", models_dir=models, manifest=manifest_path)
    assert done.returncode == 0, done.stderr
    assert f"pinned candidate:v1 in {manifest_path}" in done.stdout and "challenger → candidate:v1" in done.stdout
    assert "candidate:v1" in TrustedManifest.read(manifest_path).digests
    again = run_registry("promote", "candidate:v1", "--alias", "champion", models_dir=models, manifest=manifest_path)
    assert again.returncode == 0 and "pinned" not in again.stdout
