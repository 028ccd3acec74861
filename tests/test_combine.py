"""Issue 8: `loco combine` merges committed adapters into a new adapter (peft add_weighted_adapter) that is exported,
registered and served like a trained one."""
import json
import numpy as np
import pytest
from conftest import REPO, run_loco
from locollm.registry import Registry, scratch_project
from locollm.gguf.merge import read_gguf_lora

@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    return scratch_project(tmp_path_factory.mktemp("combine")/"p", REPO/"registry.yaml", adapters=True)

def test_cat_composite_is_the_weighted_sum_and_answers(proj):
    r = run_loco("combine", "math-code", "--from", "math-gsm8k=1.0", "--from", "code-mbpp=0.5", "--json", registry=proj)
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    assert card["status"] == "candidate" and card["domain"] == "math"
    reg = Registry.load(proj, check_files=True)            # files exist and match the recorded sha256
    assert {"MIT (GSM8K, © 2021 OpenAI)", "CC BY 4.0 (MBPP, Austin et al. 2021, Google)"} <= set(reg.adapter("math-code").data_licences)
    # in the exported GGUF, every module's ΔW = B·A·(alpha/r) is 1.0·ΔW(math) + 0.5·ΔW(code)
    lw = {n: read_gguf_lora(reg.root/reg.adapter(n).files.gguf_lora) for n in ("math-code", "math-gsm8k", "code-mbpp")}
    delta = lambda w, t: (w.tensors[t][1].astype(np.float64) @ w.tensors[t][0].astype(np.float64)) * w.alpha / w.tensors[t][0].shape[0]
    for t in list(lw["math-code"].tensors)[:6]:
        assert np.allclose(delta(lw["math-code"], t), delta(lw["math-gsm8k"], t) + 0.5 * delta(lw["code-mbpp"], t), atol=1e-4), t
    r = run_loco("ask", "What is 12 times 7?", "--adapter", "math-code", "--max-tokens", "8", "--json", registry=proj, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["adapter"] == "math-code"

def test_bad_combinations_are_one_line_errors(proj):
    for args, msg in [(["--from", "math-gsm8k", "--from", "math-gsm8k-mlp", "--method", "linear"], "use --method cat"),
                      (["--from", "math-gsm8k"], "at least two"),
                      (["--from", "math-gsm8k", "--from", "code-mbpp", "--method", "ties", "--density", "0"], "density")]:
        r = run_loco("combine", "bad", *args, registry=proj)
        assert r.returncode == 1 and msg in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    assert "bad" not in {c.name for c in Registry.load(proj).data.adapters}
