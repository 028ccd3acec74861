"Issue 8: swarm modes on the real engine with synthetic adapters (quality needs trained adapters; see RESULTS.md)."
import json
from conftest import run_loco
from locollm.registry import Registry, promote
from locollm.swarm.core import Swarm
from locollm.swarm.modes import ensemble, self_consistency

def test_composition_with_scales_1_0_is_the_single_adapter(project):
    swarm = Swarm(Registry.load(project))
    eng = swarm.backend
    for q in ["Write one sentence about the sea.", "What is 17 times 3?"]:
        assert eng.generate(q, {"math-a": 1.0, "math-b": 0.0}, max_tokens=12).text == eng.generate(q, "math-a", max_tokens=12).text

def test_ensemble_asks_every_adapter_of_the_domain_in_rank_order(project):
    promote("math-b", project)
    swarm = Swarm(Registry.load(project))
    a = ensemble(swarm, "How many apples are left if I eat 3 of 10?", max_tokens=12)
    assert a.mode == "ensemble" and a.vote["candidates"] == ["math-a", "math-b"]   # no scores yet: ties ranked by name
    assert a.generation.adapters == {a.vote["winner"]: 1.0}
    assert a.decision.adapter == "math-b"   # the router's choice is reported alongside the vote

def test_self_consistency_greedy_samples_agree(project):
    swarm = Swarm(Registry.load(project))
    a = self_consistency(swarm, "What is 6 times 7?", k=3, temperature=0.0, adapter="math-a", max_tokens=12)
    assert len(set(a.vote["answers"])) == 1 and a.vote["support"] == 1.0

def test_cli_modes(project):
    out = json.loads(run_loco("ask", "What is 6 times 7?", "--sc", "2", "--adapter", "math-a", "--json", "--max-tokens", "8", registry=project).stdout)
    assert out["mode"] == "self-consistency k=2" and len(out["vote"]["answers"]) == 2
    r = run_loco("ask", "x", "--ensemble", "--sc", "2", registry=project)
    assert r.returncode == 1 and "cannot be combined" in r.stderr
    r = run_loco("ask", "x", "--sc", "-1", registry=project)   # refused up front, naming the option
    assert r.returncode == 1 and "--sc" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
