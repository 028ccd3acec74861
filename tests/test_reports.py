"Issue 9: leaderboard, retire, archive and trend through the real `loco` command."
import datetime as dt, json
from conftest import run_loco
from locollm.registry import Registry, Score

def _score(v, base, ci=0.04, bench="gsm8k"):
    return Score(benchmark=bench, metric="exact_match", value=v, ci_low=None if ci is None else v - ci, ci_high=None if ci is None else v + ci,
                 n=200, baseline=base, p_value=0.02, date=dt.date(2026, 11, 20), code_version="test")

def _with_scores(project):
    with Registry.edit(project) as reg:
        reg.adapter("math-a").scores = [_score(0.35, 0.25)]
        reg.adapter("math-b").scores = [_score(0.35, 0.25, ci=None)]   # a tie, without CI
        reg.adapter("code-a").scores = [_score(0.12, 0.10, bench="humaneval")]
    return project

def test_leaderboard_ties_missing_retired(project):
    _with_scores(project)
    out = json.loads(run_loco("leaderboard", "--json", registry=project).stdout)
    math = out["domains"]["math"]
    assert [(r["adapter"], r["rank"]) for r in math] == [("math-a", 1), ("math-b", 1), ("base model", None)]
    assert math[1]["ci_low"] is None and abs(math[0]["delta"] - 0.10) < 1e-9
    assert out["domains"]["writing"] == [] and "writing" in out["composite"]["missing"]
    assert run_loco("retire", "math-b", "--reason", "superseded", registry=project).returncode == 0
    math = json.loads(run_loco("leaderboard", "--json", "--domain", "math", registry=project).stdout)["domains"]["math"]
    assert [r["adapter"] for r in math] == ["math-a", "base model"]
    r = run_loco("retire", "math-b", "--reason", "again", registry=project)
    assert r.returncode == 1 and "already retired" in r.stderr

def test_leaderboard_on_an_empty_registry(project):
    with Registry.edit(project) as reg: reg.data.adapters = []
    r = run_loco("leaderboard", registry=project)
    assert r.returncode == 0 and "no adapters yet" in r.stdout
    md = run_loco("leaderboard", "--markdown", registry=project).stdout
    assert md.count("No adapters yet") == 4

def test_retired_adapters_are_not_routed(project):
    run_loco("promote", "math-a", registry=project)
    assert json.loads(run_loco("route", "How many pens for $5?", "--json", registry=project).stdout)["adapter"] == "math-a"
    run_loco("retire", "math-a", "--reason", "broken", registry=project)
    assert json.loads(run_loco("route", "How many pens for $5?", "--json", registry=project).stdout)["adapter"] is None

def test_archive_and_trend(project):
    _with_scores(project)
    run_loco("promote", "math-a", registry=project)
    assert run_loco("archive", "--semester", "2026-S2", registry=project).returncode == 0
    arch = project.parent/"benchmarks/archive"
    snap = json.loads((arch/"2026-S2.json").read_text())
    assert snap["metrics"]["composite_swarm"] > snap["metrics"]["composite_base"]
    r = run_loco("trend", registry=project)
    assert r.returncode == 1 and "a trend needs two" in r.stderr
    synthetic = snap | {"semester": "2026-S1", "synthetic": True}
    (arch/"2026-S1.json").write_text(json.dumps(synthetic))
    assert run_loco("trend", registry=project).returncode == 0
    assert "2026-S1 (synthetic)" in (project.parent/"benchmarks/trend/trend.md").read_text()
    assert (project.parent/"benchmarks/trend/trend.png").stat().st_size > 1000
