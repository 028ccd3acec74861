"Issue 3 acceptance: `loco registry validate` rejections, concurrent promotions, doctor, version."
import json, multiprocessing as mp, re
from pathlib import Path
import psutil, pytest
from conftest import REPO, run_loco
from locollm.core import sha256_file
from locollm.registry import Registry, promote

def test_committed_registry_is_valid():
    r = run_loco("registry", "validate", REPO/"registry.yaml")
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout

def test_fixture_project_is_valid(project):
    r = run_loco("registry", "validate", project, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout) == {"valid": True, "issues": [], "warnings": []}   # every domain is routed to

def _break(project, old, new):
    text = project.read_text()
    assert old in text, f"fixture text {old!r} not found"
    project.write_text(text.replace(old, new, 1))

CASES = {
    "unknown domain":    (lambda p: _break(p, "domain: code", "domain: poetry"), "unknown domain 'poetry'"),
    "two active":        (lambda p: (_break(p, "status: accepted", "status: accepted\n    active: true"),
                                     _break(p, "name: math-b", "name: math-b\n    active: true")), "two active adapters in domain 'math'"),
    "wrong base model":  (lambda p: _break(p, "base_model: gemma3-270m-q4_k_m\n    files", "base_model: llama-3b\n    files"), "registry's base model is 'gemma3-270m-q4_k_m'"),
    "missing file":      (lambda p: (p.parent/"adapters/code-a/code-a.gguf").unlink(), "does not exist"),
    "bad hash":          (lambda p: (p.parent/"adapters/math-b/math-b.gguf").open("ab").write(b"tampered"), "does not match"),
    "duplicate name":    (lambda p: _break(p, "name: math-b", "name: math-a"), "duplicate adapter name 'math-a'"),
    "malformed YAML":    (lambda p: _break(p, "version: 2", "version: 2\n  oops: ["), "malformed YAML"),
}

@pytest.mark.parametrize("case", CASES)
def test_validate_rejects(project, case):
    breaker, reason = CASES[case]
    breaker(project)
    r = run_loco("registry", "validate", project)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr             # one fault → one line
    assert reason in lines[0] and "Traceback" not in r.stderr
    assert re.match(rf"{re.escape(str(project))}:\d+: ", lines[0]), "the line names the file and line"
    assert " — " in lines[0], "the line names a fix"

def test_loading_a_broken_registry_fails_every_command_with_one_line(project):
    _break(project, "domain: code", "domain: poetry")
    r = run_loco("adapters", "list", registry=project)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "loco: error:" in r.stderr

def _promote_many(path, name, barrier, n):
    barrier.wait()
    for _ in range(n): promote(name, path, force=True, reason="race test", by=name)

@pytest.mark.parametrize("names", [("math-a", "code-a"), ("math-a", "math-b")])
def test_concurrent_promotions_leave_a_valid_registry(project, names):
    n = 15
    barrier = mp.get_context("fork").Barrier(2)
    procs = [mp.get_context("fork").Process(target=_promote_many, args=(project, nm, barrier, n)) for nm in names]
    for p in procs: p.start()
    for p in procs: p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    reg = Registry.load(project, check_files=True)   # raises if invalid
    assert len(reg.data.promotions) == 2 * n          # no update was lost
    domains = {reg.adapter(nm).domain for nm in names}
    active = [a.name for a in reg.adapters() if a.active]
    assert len(active) == len(domains)               # one active per touched domain
    assert not list(project.parent.glob(".registry.yaml.*.tmp")), "no temp file left behind"

def test_promote_gate_and_history(project):
    r = run_loco("promote", "code-a", registry=project)
    assert r.returncode == 1 and "has not passed the acceptance gate" in r.stderr
    r = run_loco("promote", "code-a", "--force", registry=project)
    assert r.returncode == 1 and "--force needs a reason" in r.stderr
    before = project.read_text()
    assert run_loco("promote", "math-a", registry=project).returncode == 0
    r = run_loco("promote", "math-b", "--json", registry=project)
    rec = json.loads(r.stdout)
    assert (rec["adapter"], rec["previous"], rec["forced"]) == ("math-b", "math-a", False)
    reg = Registry.load(project)
    assert reg.active_adapter("math").name == "math-b" and not reg.adapter("math-a").active
    assert project.read_text() != before and project.read_text().startswith("# LocoLLM registry v2"), "comments survive"

def test_doctor_json_reports_measured_values():
    r = run_loco("doctor", "--json", registry=REPO/"registry.yaml")
    rep = json.loads(r.stdout)
    assert rep["problems"] == [] and r.returncode == 0
    assert abs(rep["ram_total_bytes"] - psutil.virtual_memory().total) < 2**20
    bm = rep["base_model"]
    assert bm["present"] and bm["size_bytes"] == Path(bm["path"]).stat().st_size
    assert bm["estimated_peak_ram_bytes"] > bm["size_bytes"]
    assert rep["backends"]["llama_cpp"]["package"]

@pytest.mark.slow
def test_doctor_measure_loads_the_model():
    r = run_loco("doctor", "--json", "--measure", registry=REPO/"registry.yaml")
    m = json.loads(r.stdout)["base_model"]["measured"]
    size = json.loads(r.stdout)["base_model"]["size_bytes"]
    assert 50 * 2**20 < m["peak_rss_bytes"] < 4 * 2**30 and m["load_and_answer_s"] > 0
    assert m["peak_rss_bytes"] > size * 0.5  # the weights were really mapped in

def test_version():
    r = run_loco("--version")
    import locollm
    assert r.returncode == 0 and r.stdout.startswith(f"loco {locollm.__version__}")

def test_no_registry_is_one_line(tmp_path):
    r = run_loco("adapters", "list", env={"LOCOLLM_REGISTRY": str(tmp_path/"nope.yaml")})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
