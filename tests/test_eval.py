"""Evaluation harness (issue 6): scorers, sandbox containment, statistics, `loco eval` end to end with the cache,
one-line errors, and the papermill notebook. The end-to-end tests load the real 270M base model and a seeded
random (synthetic) LoRA; they use small limits and one CPU thread so they stay quick on a shared 2-core machine."""
import json, os, shutil, socket, subprocess, sys, threading, time
from pathlib import Path
import pytest

from locollm.evals.benchmarks import GSM8K, Item, Summarisation, Writing, pairwise_verdict, parse_choice, parse_score, rouge_scores, split_by_source, summarisation_split, summary_key, writing_key, writing_split, WRITING_FILES
from locollm.answers import gsm8k_scores
from locollm.core import read_jsonl
from locollm.evals.code import HumanEval
from locollm.answers import extract_code
from locollm.sandbox import run_sandboxed, sandbox_isolation
from locollm.evals.stats import acceptance_verdict, mcnemar_exact, paired_test, wilson_ci
from locollm.registry import scratch_project
from locollm.core import data_dir, sha256_file
from conftest import needs_full_data

REPO = Path(__file__).resolve().parents[1]
LOCO = [str(Path(sys.executable).with_name("loco"))]


# ---------------------------------------------------------------- scorers with real-looking model outputs
GSM_REF = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72"
BIG_REF = "He earns 1,200 + 3,300 = 4,500.\n#### 4,500"

@pytest.mark.parametrize("output, ref, flexible, strict", [
    ("Natalia sold 24 clips in May, so 48 + 24 = 72 clips.\n#### 72", GSM_REF, 1, 1),
    ("In total she sold 72 clips.", GSM_REF, 1, 0),                        # trailing full stop ignored
    ("She sold 72 clips in April and May. That is 2 months.", GSM_REF, 0, 0),  # the last number wins (flexible)
    ("#### 72\nShe also has 3 friends.", GSM_REF, 0, 1),                    # strict takes the first ####, flexible the last number
    ("He earns $4,500 per month.", BIG_REF, 1, 0),                          # $ and commas ignored
    ("#### $4,500", BIG_REF, 1, 0),                                          # strict needs a digit right after "#### "; flexible finds $4,500
    ("The answer is 4500.00", BIG_REF, 0, 0),                               # as in lm-eval: 4500.00 != 4500
    ("I am not sure how to solve this.", GSM_REF, 0, 0),                    # no answer
    ("", GSM_REF, 0, 0),
    ("The temperature drops to -5 degrees.", "#### -5", 1, 0),
])
def test_gsm8k_scorer(output, ref, flexible, strict):
    assert gsm8k_scores(output, ref) == {"exact_match_flexible": float(flexible), "exact_match_strict": float(strict)}

def test_gsm8k_subset_is_fixed_and_nested():
    g = GSM8K()
    a, b = [i.id for i in g.load(limit=10)], [i.id for i in g.load(limit=30)]
    assert len(a) == 10 and len(b) == 30 and set(a) <= set(b)
    assert a == [i.id for i in GSM8K().load(limit=10)] and a != [i.id for i in g.load(limit=10, seed=1)]

def test_rouge_code_and_judge_parsing():
    assert rouge_scores("The cat sat on the mat.", "the cat sat on the mat")["rougeL"] == pytest.approx(1.0)
    assert rouge_scores("", "the cat sat")["rougeL"] == 0.0
    assert extract_code("Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds.") == "def add(a, b):\n    return a + b\n"
    assert [parse_score(s) for s in ("8", "Score: 7/10", "10.", "none", "11")] == [8, 7, 10, None, None]
    assert [parse_choice(s) for s in ("B", "Response A.", "a", "")] == ["B", "A", None, None]
    assert pairwise_verdict("A", "A") == {"win": 0.5, "agree": 0.0, "first_position": 1.0}
    assert pairwise_verdict("A", "B")["win"] == 1.0 and pairwise_verdict("B", "A")["win"] == 0.0


# ---------------------------------------------------------------- held-out splits by source text
def test_summarisation_split_holds_out_whole_texts():
    rows = read_jsonl(data_dir()/"summarisation"/"t0_summarisation.jsonl")
    train, test = summarisation_split(rows)
    assert {summary_key(r) for r in train}.isdisjoint({summary_key(r) for r in test})
    assert 0.1 < len(test) / len(rows) < 0.3
    assert summarisation_split(list(reversed(rows)))[1] == list(reversed(test))    # order-independent
    items = Summarisation().items()
    assert items and len({i.id for i in items}) == len(items)

@needs_full_data
def test_full_benchmarks_have_at_least_50_items():
    "Enough items for the acceptance gate (n ≥ 50) in every benchmark that is made from the data."
    assert len(Summarisation().items()) >= 50 and len(Writing().items()) >= 50

def test_writing_split_holds_out_requests():
    rows = [r for f in WRITING_FILES for r in read_jsonl(data_dir()/"writing"/f)]
    train, test = writing_split(rows)
    assert {writing_key(r) for r in train}.isdisjoint({writing_key(r) for r in test})
    assert Writing().items()


# ---------------------------------------------------------------- the sandbox contains misbehaving code
def _nobody_processes() -> int:
    "Live processes of uid 65534 (zombies, which pid 1 reaps, hold nothing)."
    out = subprocess.run(["ps", "-u", "65534", "-o", "stat="], capture_output=True, text=True).stdout
    return sum(not s.startswith("Z") for s in out.split())

def test_sandbox_infinite_loop():
    t = time.perf_counter()
    r = run_sandboxed("while True:\n    pass", timeout=2)
    assert r.status == "timeout" and not r.passed and time.perf_counter() - t < 10

def test_sandbox_fork_bomb():
    before = _nobody_processes()
    for prog in ("import os\nwhile True:\n    os.fork()",
                 "import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])",
                 "import multiprocessing as mp\nps = [mp.Process(target=lambda: None) for _ in range(1000)]\n[p.start() for p in ps]"):
        r = run_sandboxed(prog, timeout=5)
        assert r.status in ("failed", "timeout"), (prog, r)
    assert _nobody_processes() <= before            # nothing left running

def test_sandbox_huge_memory():
    for prog in ("x = bytearray(16 * 2**30)", "l = []\nwhile True:\n    l.append(' ' * 10**7)"):
        t = time.perf_counter()
        r = run_sandboxed(prog, timeout=20, memory_mb=512)
        assert not r.passed and time.perf_counter() - t < 20, r

def test_sandbox_file_writes_outside_never_reach_the_host(tmp_path):
    victim, keep = tmp_path/"victim.txt", tmp_path/"keep.txt"
    keep.write_text("precious")
    escape = Path("/tmp")/f"loco-escape-{os.getpid()}.txt"
    for prog in (f"open({str(victim)!r}, 'w').write('x')", f"open({str(escape)!r}, 'a').write('x')",
                 f"import os\nos.remove({str(keep)!r})", f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
                 f"import os\nos.chdir('/tmp')\nopen({escape.name!r}, 'w').write('x')",
                 f"import os\nos.symlink({str(victim)!r}, 'link')\nopen('link', 'w').write('x')"):
        run_sandboxed(prog, timeout=5)   # inside, /tmp is the sandbox's own tmpfs: some of these "succeed" in there
    assert not victim.exists() and not escape.exists() and keep.read_text() == "precious"

def test_sandbox_network_is_blocked():
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1); srv.settimeout(6)
    port, accepted = srv.getsockname()[1], []
    th = threading.Thread(target=lambda: accepted.append(_accept(srv))); th.start()
    for prog in (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'hi')",
                 "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)"):
        r = run_sandboxed(prog, timeout=8)
        assert not r.passed, r
    th.join(); srv.close()
    assert accepted == [None]

def _accept(srv):
    try: return srv.accept()
    except OSError: return None

def test_sandbox_uses_bubblewrap_where_available():
    iso = sandbox_isolation()
    bwrap = shutil.which("bwrap")
    if bwrap and subprocess.run([bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"]).returncode == 0:
        assert iso.sandboxed, iso
    assert iso.as_nobody == (os.geteuid() == 0), iso

def test_harness_survives_and_scores_failures():
    he = HumanEval()
    item = next(i for i in he.items() if i.id == "HumanEval/0")
    evil = "```python\nimport os\ndef has_close_elements(numbers, threshold):\n    os.system('rm -rf ~')\n    return True\n```"
    assert he.score(item, evil)["pass@1"] == 0.0
    assert he.score(item, "```python\ndef has_close_elements(numbers, threshold):\n    while True: pass\n```")["pass@1"] == 0.0
    assert he.score(item, item.reference["prompt"] + item.reference["canonical_solution"])["pass@1"] == 1.0
    assert run_sandboxed("print('still fine')").stdout.strip() == "still fine"


# ---------------------------------------------------------------- statistics with known answers
def test_stats_known_values():
    assert mcnemar_exact([1] * 12 + [0] * 48, [0] * 60) == {"b": 12, "c": 0, "p_value": pytest.approx(2 * 0.5 ** 12)}
    lo, hi = wilson_ci(0, 100)
    assert lo == 0 and hi == pytest.approx(0.036995, abs=1e-5)
    r = paired_test([1] * 20 + [0] * 40, [1] * 5 + [0] * 55)
    v = acceptance_verdict({"gsm8k": r}, "gsm8k", [])
    assert v.status == "accepted" and r.p_value < 0.001
    assert acceptance_verdict({"gsm8k": paired_test([1] * 5, [0] * 5)}, "gsm8k", []).status == "inconclusive"


# ---------------------------------------------------------------- `loco eval` end to end
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    "A temporary copy of the registry with a seeded random LoRA registered as a maths adapter, and a fresh cache."
    from locollm.gguf.lora import random_lora, target_shapes
    from locollm.gguf.model import base_model_path
    from locollm.registry import AdapterCard, AdapterFiles, Registry
    d = tmp_path_factory.mktemp("evalproj")
    shutil.copy(REPO/"registry.yaml", d/"registry.yaml")
    reg = Registry.load(d/"registry.yaml")
    shapes = target_shapes(base_model_path(reg))
    ok = random_lora(d/"adapters"/"rand-math.gguf", shapes, "gemma3", seed=1, std=0.05)
    wrong = random_lora(d/"adapters"/"other-base.gguf", {n: (512, o) for n, (i, o) in shapes.items()}, "gemma3", seed=2)
    cards = [AdapterCard(name="rand-math", domain="math", base_model=reg.data.base_model.name, files=AdapterFiles(gguf_lora="adapters/rand-math.gguf"),
                         sha256={"adapters/rand-math.gguf": sha256_file(ok)}, licence="MIT"),
             AdapterCard(name="other-base", domain="math", base_model=reg.data.base_model.name, files=AdapterFiles(gguf_lora="adapters/other-base.gguf"),
                         sha256={"adapters/other-base.gguf": sha256_file(wrong)}, licence="MIT")]
    with Registry.edit(d/"registry.yaml") as r: r.data.adapters = cards
    return d

def loco(project, *args, timeout=1500):
    env = os.environ | {"LOCOLLM_CACHE": str(project/"cache")}   # LOCOLLM_DATA: the data conftest found
    return subprocess.run([*LOCO, "--registry", str(project/"registry.yaml"), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=project)

# five items, 64 tokens: enough generation that the first run's benchmarks take a minute on 2 cores
ARGS = ["eval", "rand-math", "--limit", "5", "--max-tokens", "64", "--threads", "1", "--json"]

def _numbers(d):
    return [{k: b[k] for k in ("name", "n", "item_ids_sha256", "adapter", "base", "paired")} for b in d["benchmarks"]], d["verdict"]

@pytest.mark.slow
def test_eval_end_to_end_then_cached_rerun_skips_the_model(project):
    t = time.perf_counter(); r1 = loco(project, *ARGS); first = time.perf_counter() - t
    assert r1.returncode == 0, r1.stderr[-2000:]
    d1 = json.loads(r1.stdout)
    assert d1["schema"] == "locollm.eval/1" and d1["adapter"] == "rand-math" and d1["domain"] == "math"
    print({b["name"]: b["seconds"] for b in d1["benchmarks"]}, d1["cache"])
    assert [b["name"] for b in d1["benchmarks"]] == ["gsm8k", "humaneval", "writing-loglik", "summarisation-rougeL"]   # the registry's domain order
    assert all(b["n"] == 5 and b["paired"]["test"] for b in d1["benchmarks"])
    assert d1["verdict"]["status"] == "inconclusive" and "n = 5 < 50" in d1["verdict"]["reasons"][0]
    assert d1["settings"]["writing"].startswith("writing-loglik") and d1["judge"]["model"] is None   # no judge loaded
    assert d1["code_version"] and d1["packages"]["scipy"] and d1["sandbox"]
    assert d1["registry_updated"] is False                               # n < 50 never overwrites the registry
    for f in ("json", "markdown", "plot", "items"): assert Path(d1["files"][f]).stat().st_size > 0
    md = Path(d1["files"]["markdown"]).read_text()
    assert "Verdict: **INCONCLUSIVE**" in md and "Writing is measured by writing-loglik" in md and "| humaneval | pass@1 | 5 |" in md
    assert d1["cache"]["misses"] > 0
    t = time.perf_counter(); r2 = loco(project, *ARGS); second = time.perf_counter() - t
    assert r2.returncode == 0, r2.stderr[-2000:]
    d2 = json.loads(r2.stdout)
    assert d2["cache"]["misses"] == 0 and _numbers(d2) == _numbers(d1)
    work = [sum(b["seconds"] for b in d["benchmarks"]) for d in (d1, d2)]
    print(f"first {first:.1f} s, cached rerun {second:.2f} s: {first / second:.0f}x; "
          f"benchmarks {work[0]:.1f} s vs {work[1]:.3f} s")
    # the benchmarks' own time shows the cache (a machine that generates faster shrinks only the wall-clock ratio, whose
    # floor is the fixed start-up of ~1-2 s: imports, reading the data files, hashing the base model)
    assert work[0] / max(work[1], 1e-3) >= 50, work   # seconds are rounded to the millisecond
    assert first / second >= 10, (first, second)

@pytest.mark.slow
def test_eval_base_alone(project):
    r = loco(project, "eval", "base", "--benchmarks", "writing,summarisation", "--limit", "2", "--max-tokens", "16", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert d["adapter"] is None and d["verdict"] is None and d["registry_updated"] is False
    w, s = d["benchmarks"]
    assert (w["name"], w["metric"], w["paired"], w["n"]) == ("writing-loglik", "ref_logprob", None, 2)
    assert s["metric"] == "rougeL" and 0 <= s["base"]["rougeL"] <= 1 and s["base_ci"][0] <= s["base"]["rougeL"] <= s["base_ci"][1]

@pytest.mark.slow
def test_eval_unusable_judge_leaves_writing_to_the_reference_likelihood(project):
    "A configured judge that disagrees with itself across the two orders decides nothing: the report says so by name."
    from locollm.gguf.model import base_model_path
    from locollm.registry import Registry
    judge = base_model_path(Registry.load(project/"registry.yaml"))   # the 270M model: it picks the first answer it reads
    r = loco(project, "eval", "rand-math", "--benchmarks", "gsm8k,writing", "--limit", "3", "--max-tokens", "16",
             "--threads", "1", "--judge", str(judge), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert [b["name"] for b in d["benchmarks"]] == ["gsm8k", "writing-judge", "writing-loglik"]
    j = d["benchmarks"][1]["judge"]
    assert not j["usable"] and j["note"] == f"judge unusable: consistent on {j['consistency']:.0%} of pairs"
    assert d["settings"]["writing"] == f"writing-loglik: {j['note']}"
    assert all(b["n"] == 3 and b["paired"] for b in d["benchmarks"])
    assert d["benchmarks"][2]["paired"]["margin_metric"] == "ref_token_prob"
    assert f"**{j['note']}.**" in Path(d["files"]["markdown"]).read_text()

@pytest.mark.slow
def test_eval_writes_registry_and_promote_refuses_rejected(project, monkeypatch):
    from locollm.evals.evaluate import evaluate_adapter
    from locollm.registry import Registry, promote
    from locollm.core import LocoError
    rep = evaluate_adapter(project/"registry.yaml", "rand-math", "gsm8k", limit=3, max_tokens=64, threads=1, cache=project/"cache.sqlite",
                           progress=False, min_n=3, out_dir=project/"r")
    card = Registry.load(project/"registry.yaml").adapter("rand-math")
    assert rep.data["registry_updated"] and card.status == rep.verdict["status"] == "rejected"
    assert {(s.benchmark, s.metric, s.n) for s in card.scores} == {("gsm8k", "exact_match_flexible", 3), ("gsm8k", "exact_match_strict", 3)}
    with pytest.raises(LocoError, match="is rejected"): promote("rand-math", project/"registry.yaml")

@pytest.mark.slow
def test_eval_adapter_of_another_base_is_a_one_line_error(project):
    r = loco(project, "eval", "other-base", "--benchmarks", "gsm8k", "--limit", "1", "--threads", "1", timeout=300)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loco: error:") and "does not fit the base model" in lines[0], r.stderr

def test_eval_card_of_another_base_is_a_one_line_error(tmp_path):
    reg = scratch_project(tmp_path, REPO/"registry.yaml", adapters=False)
    text = reg.read_text()
    assert "adapters: []" in text
    reg.write_text(text.replace("adapters: []", "adapters:\n  - {name: llama-math, domain: math, base_model: llama-3.2-3b-q4, licence: MIT}"))
    r = subprocess.run([*LOCO, "--registry", str(tmp_path/"registry.yaml"), "eval", "llama-math", "--benchmarks", "gsm8k", "--limit", "1"],
                       capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "llama-3.2-3b-q4" in lines[0] and "gemma3-270m-q4_k_m" in lines[0], r.stderr

def test_eval_unknown_benchmark_is_a_one_line_error():
    r = subprocess.run([*LOCO, "--registry", str(REPO/"registry.yaml"), "eval", "base", "--benchmarks", "mmlu"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "unknown benchmark 'mmlu'" in r.stderr


# ---------------------------------------------------------------- the papermill notebook
@pytest.mark.slow
def test_papermill_eval_notebook(tmp_path):
    pm = Path(sys.executable).parent/"papermill"
    if not pm.exists(): pytest.skip("papermill is not installed (the [notebooks] extra)")
    out = tmp_path/"eval-out.ipynb"
    r = subprocess.run([str(pm), str(REPO/"benchmarks"/"eval.ipynb"), str(out), "-p", "adapter", "base", "-p", "benchmarks", "gsm8k",
                        "-p", "limit", "2", "-p", "max_tokens", "16", "-p", "threads", "1", "-p", "out", str(tmp_path/"report"),
                        "--cwd", str(REPO)], capture_output=True, text=True, timeout=600, env=os.environ | {"LOCOLLM_CACHE": str(tmp_path/"c")})
    assert r.returncode == 0, r.stderr[-3000:]
    nb = json.loads(out.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    summary = json.loads(text.split("EVAL_SUMMARY ", 1)[1].splitlines()[0])
    assert summary["schema"] == "locollm.eval/1" and summary["benchmarks"]["gsm8k"]["n"] == 2
    assert json.loads((tmp_path/"report"/"report.json").read_text())["benchmarks"][0]["name"] == "gsm8k"
