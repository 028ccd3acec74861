"The course notebooks: committed clean, parameterised for CI, public API only, and harmless to the repository when run."
import ast, hashlib, json, re, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO/"tools"))
import run_course  # noqa: E402

NOTEBOOKS = run_course.notebooks([])
EXPECTED = ["00_setup_and_first_question", "01_the_base_model_and_adr", "02_evaluating_the_base_model", "03_train_your_first_adapter",
            "04_is_it_significant", "05_routing", "06_ensembles_and_self_consistency", "07_share_your_adapter", "08_research_project"]

def cells(path, kind):
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == kind]

def test_the_sequence_is_complete():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_committed_clean_with_a_ci_parameter(path):
    assert run_course.check(path) == []

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_goals_plots_exercises(path):
    md, code = cells(path, "markdown"), "\n".join(cells(path, "code"))
    assert "**Learning goals.**" in md[0], "the learning goals open the notebook"
    assert "## Exercises" in md[-1], "the notebook ends with exercises"
    assert re.search(r"plt\.subplots|display\(Image", code), "every course notebook shows at least one plot"

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_public_api_only(path):
    "Only public names of locollm: no `from locollm.x import _y`, no `locollm.x._y`."
    import importlib
    for src in cells(path, "code"):
        py = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith("!"))   # IPython shell lines
        for node in ast.walk(ast.parse(py)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("locollm"):
                mod = importlib.import_module(node.module)
                for a in node.names:
                    assert not a.name.startswith("_"), f"{path.name}: private name {node.module}.{a.name}"
                    assert a.name in getattr(mod, "__all__", []) or isinstance(getattr(mod, a.name, None), type(mod)), \
                        f"{path.name}: {node.module}.{a.name} is not in the module's __all__"
        assert not re.search(r"locollm\.\w+\._\w", py), f"{path.name}: private attribute of a locollm module"

def _tree_hash(paths):
    h = hashlib.sha256()
    for p in paths:
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file() and not f.name.endswith(".lock"): h.update(str(f.relative_to(REPO)).encode()); h.update(f.read_bytes())
    return h.hexdigest()

@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_course_follows_one_adapter_and_leaves_the_repository_alone(tmp_path):
    """The whole course in order (CI sizes) in one workspace: 04-08 use the adapter 03 trained, by name and file hash,
    and the repository's registry, adapters and routers are never touched."""
    from locollm.core import sha256_file
    from locollm.registry import Registry, course_trail
    watched = [REPO/"registry.yaml", REPO/"adapters", REPO/"routers"]
    before = _tree_hash(watched)
    r = subprocess.run([sys.executable, str(REPO/"tools"/"run_course.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=3500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert _tree_hash(watched) == before
    timings = json.loads((tmp_path/"timings.json").read_text())
    assert [n["notebook"] for n in timings["notebooks"]] == [f"{e}.ipynb" for e in EXPECTED]
    workspace = tmp_path/"workspace"
    trail = course_trail(workspace)
    trained = [t for t in trail if t["notebook"] == "03"]
    assert len(trained) == 1, trail
    card = Registry.load(workspace/"registry.yaml").adapter(trained[0]["adapter"])
    assert trained[0]["sha256"] == sha256_file(workspace/card.files.gguf_lora)   # the file 03 wrote
    used = {t["notebook"]: (t["adapter"], t["sha256"]) for t in trail if t["notebook"] != "03"}
    assert used == {nb: (card.name, trained[0]["sha256"]) for nb in ("04", "05", "06", "07", "08")}

def test_a_failing_notebook_fails_the_run(tmp_path, monkeypatch):
    "The runner's exit code is 1 when a cell raises (and it still writes the timings)."
    course = tmp_path/"course"; course.mkdir()
    nb = {"cells": [{"id": "p", "cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "ci = False", "outputs": [], "execution_count": None},
                    {"id": "b", "cell_type": "code", "metadata": {}, "source": "raise RuntimeError('boom')", "outputs": [], "execution_count": None}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (course/"99_boom.ipynb").write_text(json.dumps(nb))
    monkeypatch.setattr(run_course, "COURSE", course)
    assert run_course.main(["--out", str(tmp_path/"out")]) == 1
    t = json.loads((tmp_path/"out"/"timings.json").read_text())
    assert t["notebooks"][0]["ok"] is False and "boom" in t["notebooks"][0]["error"]
