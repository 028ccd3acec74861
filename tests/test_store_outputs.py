"""Issue 25: the course's committed notebooks carry a full run's outputs and its measured time (tools/store_outputs.py),
and what they carry matches the course as committed."""
import copy, importlib.util, json, re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("store_outputs", REPO/"tools"/"store_outputs.py")
so = importlib.util.module_from_spec(spec); spec.loader.exec_module(so)
SCALING = {e: {"seconds_1_thread": 2.0, "seconds_2_threads": 1.2, "serial_fraction": 0.2, "ratio_4_to_2": 0.667}
           for e in ("llama.cpp", "torch")}

def _nb(code="print(1)"):
    return {"cells": [{"cell_type": "markdown", "id": "m1", "metadata": {},
                       "source": ["# 00 · Intro\n", "\n", "**Learning goals.** read.\n", "\n", "**Compute:** little."]},
                      {"cell_type": "code", "id": "c1", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                       "outputs": [], "source": ["ci = False"]},
                      {"cell_type": "code", "id": "c2", "metadata": {}, "execution_count": None, "outputs": [],
                       "source": [code]}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}

def _project(tmp_path, ran_code="print(1)", mode="full"):
    (tmp_path/"repo"/"course").mkdir(parents=True); (tmp_path/"ran").mkdir()
    (tmp_path/"repo"/"course"/"00_intro.ipynb").write_text(json.dumps(_nb()))
    ran = _nb(ran_code)
    ran["cells"].insert(2, {"cell_type": "code", "id": "inj", "metadata": {"tags": ["injected-parameters"]},
                            "execution_count": 2, "outputs": [], "source": ["workspace = '/tmp/w'"]})
    ran["cells"][3] |= {"execution_count": 3, "metadata": {"papermill": {"duration": 0.1}},
                        "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]}
    (tmp_path/"ran"/"00_intro.ipynb").write_text(json.dumps(ran))
    (tmp_path/"ran"/"timings.json").write_text(json.dumps({
        "mode": mode, "date": "2026-12-06", "load_average": 0.5, "total_seconds": 150.0,
        "machine": {"cpu": "Test CPU", "cpu_count": 2, "ram_gib": 8, "os": "Linux", "python": "3.11", "code_version": "x"},
        "notebooks": [{"notebook": "00_intro.ipynb", "seconds": 150.0, "ok": True, "error": None}]}))
    return tmp_path/"repo", tmp_path/"ran"

def test_a_full_run_gives_the_lesson_its_outputs_and_its_time(tmp_path):
    repo, ran = _project(tmp_path)
    assert so.store_course(ran, repo, SCALING) == 0
    nb = json.loads((repo/"course"/"00_intro.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["id"] for c in code] == ["c1", "c2"]                       # papermill's injected cell stays out
    assert code[1]["outputs"][0]["text"] == ["1\n"] and code[1]["execution_count"] is None and code[1]["metadata"] == {}
    intro = "".join(nb["cells"][0]["source"])
    assert re.search(r"\*\*Time:\*\* 2\.5 min on 2 cores.*Test CPU, 2026-12-06.*about 1\.7 min on a 4-core laptop", intro)
    assert intro.index("**Time:**") < intro.index("**Compute:**")
    assert json.loads((repo/"course"/"timings.json").read_text())["seconds"] == {"00_intro.ipynb": 150.0}
    assert so.store_course(ran, repo, SCALING) == 0                       # a second run replaces the line, never adds one
    assert "".join(json.loads((repo/"course"/"00_intro.ipynb").read_text())["cells"][0]["source"]).count("**Time:**") == 1

def test_a_stale_or_ci_sized_run_is_refused_and_nothing_is_written(tmp_path, capsys):
    repo, ran = _project(tmp_path, ran_code="print(2)")
    before = (repo/"course"/"00_intro.ipynb").read_text()
    assert so.store_course(ran, repo, SCALING) == 1
    assert "changed since" in capsys.readouterr().err and (repo/"course"/"00_intro.ipynb").read_text() == before
    assert not (repo/"course"/"timings.json").exists()
    repo, ran = _project(tmp_path/"ci", mode="ci")
    assert so.store_course(ran, repo, SCALING) == 1 and "not a complete --full run" in capsys.readouterr().err

def test_amdahl_from_one_and_two_threads():
    times = iter([4.0, 4.0, 2.0, 2.0])                    # perfectly parallel: 4 cores halve the 2-core time
    assert so._amdahl_4_vs_2(lambda n: next(times))["ratio_4_to_2"] == 0.5
    times = iter([4.0, 4.0, 4.0, 4.0])                    # serial: more cores change nothing
    assert so._amdahl_4_vs_2(lambda n: next(times))["ratio_4_to_2"] == 1.0

def test_the_committed_course_carries_the_outputs_of_its_own_code():
    """Every lesson has stored outputs and the Time line course/timings.json gives it (that the outputs match the
    lesson's code is checked when they are stored: store_course refuses a stale run)."""
    record = json.loads((REPO/"course"/"timings.json").read_text())
    for path in sorted((REPO/"course").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert sum(bool(c["outputs"]) for c in code) >= len(code) // 2, f"{path.name}: run tools/store_outputs.py course"
        assert path.name in record["seconds"], path.name
        intro = "".join(nb["cells"][0]["source"])
        assert so.time_line(path.name, record) in intro, f"{path.name}: its Time line is not course/timings.json's"
