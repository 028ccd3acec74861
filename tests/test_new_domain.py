"""Issue 25: a new domain, by `docs/adapter-guide.md` alone — a `domains` entry with keywords and its own JSONL
benchmark (section 1), training rows of one's own with a licence (sections 2–3), `loco train --check` then `loco
train` (section 4), `loco eval` (section 6), the router taught the domain with `loco router train --extra`, and `loco
promote` — all with the `loco` command on a scratch copy of the project, tiny sizes."""
import json, shutil
import pytest
from conftest import REPO, run_loco

pytestmark = pytest.mark.slow

def loco(*args, registry):
    "`run_loco` that must succeed."
    r = run_loco(*args, registry=registry, timeout=900)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    return r

def rows(pairs, key="prompt", value="response"):
    return "".join(json.dumps({key: f"What is {a} plus {b}?", value: str(a + b)}) + "\n" for a, b in pairs)

CONFIG = """adapter: {name: arithmetic-ci, domain: arithmetic, version: 0.0.1, authors: [CI]}
base_model: gemma3-270m-q4_k_m
data: {path: sums.jsonl, licence: CC0-1.0, max_validation_rows: 4}
lora: {r: 8, alpha: 16, dropout: 0.0}
training: {max_seq_len: 64, max_steps: 2, batch_size: 4, learning_rate: 3.0e-3, schedule: constant, warmup_steps: 0,
           seed: 1}
"""

@pytest.mark.timeout(1800)
def test_a_new_domain_by_the_adapter_guide(tmp_path):
    from locollm.registry import Domain, Registry, scratch_project
    reg = scratch_project(tmp_path, REPO/"registry.yaml", adapters=False)
    shutil.copy(REPO/"TRAINING_LOG_TEMPLATE.md", tmp_path/"TRAINING_LOG_TEMPLATE.md")
    # 1. the domain: keywords and a benchmark of 50 held-out items (sums of two-digit numbers)
    (tmp_path/"benchmarks"/"data").mkdir(parents=True, exist_ok=True)
    (tmp_path/"benchmarks"/"data"/"sums.jsonl").write_text(rows([(a, a + 7) for a in range(10, 60)], value="reference"))
    with Registry.edit(reg) as r:
        r.data.domains.append(Domain(name="arithmetic", description="Sums of two numbers.", keywords=["plus", "add"],
                                     benchmark="jsonl:number:benchmarks/data/sums.jsonl", metric="number"))
    # 2-4. training rows of one's own (one-digit sums: none is a benchmark item), the config, check, train
    (tmp_path/"configs").mkdir(exist_ok=True)
    (tmp_path/"configs"/"sums.jsonl").write_text(rows([(a, b) for a in range(10) for b in range(10)]))
    (tmp_path/"configs"/"arithmetic-ci.yaml").write_text(CONFIG)
    loco("train", tmp_path/"configs"/"arithmetic-ci.yaml", "--check", registry=reg)
    trained = json.loads(loco("train", tmp_path/"configs"/"arithmetic-ci.yaml", "--json", registry=reg).stdout)
    assert trained["registered"]
    # 6. evaluate on its own benchmark: 50 items, a verdict, scores in the registry
    rep = json.loads(loco("eval", "arithmetic-ci", "--benchmarks", "jsonl:number:benchmarks/data/sums.jsonl",
                          "--limit", "50", "--max-tokens", "8", "--threads", "1", "--json", registry=reg).stdout)
    assert rep["benchmarks"][0]["n"] == 50 and rep["verdict"]["status"] in ("accepted", "rejected", "inconclusive")
    card = Registry.load(reg).adapter("arithmetic-ci")
    assert card.scores and card.scores[0].benchmark == "jsonl:number:benchmarks/data/sums.jsonl"
    # routing: the registry's router (mixture) knows the domain by its keywords, but its TF-IDF member was never trained
    # on it; `router train mixture --extra` teaches every member ("What is 12 plus 30?" stays maths: the maths pattern
    # `12 plus 30` is the longer cue, so the question asked here is one only the new domain's cue claims)
    def routed(*router):
        return json.loads(loco("route", "Add 12 and 30.", *router, "--json", registry=reg).stdout)["domain"]
    assert routed("--router", "tfidf") != "arithmetic"
    queries = tmp_path/"arithmetic-queries.jsonl"
    queries.write_text("".join(json.dumps({"query": q, "domain": "arithmetic"}) + "\n" for a in range(40)
                               for q in (f"add {a} and {a + 3}", f"what's {a} plus {2 * a}?")))
    loco("router", "train", "mixture", "--n", "60", "--extra", queries, registry=reg)
    assert "never sends" not in loco("registry", "validate", registry=reg).stdout
    assert routed("--router", "tfidf") == routed() == "arithmetic"
    # promote it (forced, with a reason, unless the gate accepted it), and a routed question reaches it
    status = Registry.load(reg).adapter("arithmetic-ci").status
    loco("promote", "arithmetic-ci", *([] if status == "accepted" else ["--force", "--reason", "CI: a new domain"]),
         registry=reg)
    ask = json.loads(loco("ask", "Add 12 and 30.", "--max-tokens", "8", "--json", registry=reg).stdout)
    assert ask["adapter"] == "arithmetic-ci", ask
