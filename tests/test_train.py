"""Issue 5, training pipeline, end to end on the real Gemma 3 270M base: `loco train` on a tiny config →
peft adapter + GGUF LoRA → loads in the embedded llama.cpp engine → registered (in a temporary copy of the
registry, never the committed one); bad configs fail in one line before any training; and the acceptance test
of the GGUF export: over 20 prompts × 16 positions, llama.cpp (GGUF base + GGUF LoRA) and transformers
(dequantized base + peft adapter) agree on the top-1 next token ≥ 90% of the time, and so do the two bases.

The first run converts the base GGUF to a cached transformers checkpoint (≈ 2.5 min); later runs reuse it."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from conftest import LOCO, REPO, needs_full_data

pytestmark = pytest.mark.slow

def loco(*args, registry, timeout=900):
    "`loco` on `registry`, reading the data conftest found (the scratch project has none beside it)."
    env = {**os.environ, "LOCOLLM_REGISTRY": str(registry)}
    return subprocess.run([LOCO, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)

def one_line_error(r, *needles):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles: assert n in lines[0], lines[0]

TINY = """adapter: {name: tiny-math, domain: math, version: 0.0.1, authors: [CI]}
base_model: gemma3-270m-q4_k_m
data: {sources: [gsm8k], max_rows: 12, max_validation_rows: 4}
lora: {r: 8, alpha: 16, dropout: 0.0}
training: {max_seq_len: 192, max_steps: 3, batch_size: 4, learning_rate: 3.0e-3, schedule: constant, warmup_steps: 0, seed: 1}
"""

@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    "A temporary LocoLLM project: a copy of the committed registry (and the files it names), the log template, a tiny config."
    d = tmp_path_factory.mktemp("proj")
    from locollm.registry import scratch_project
    scratch_project(d, REPO/"registry.yaml", adapters=False)
    shutil.copy(REPO/"TRAINING_LOG_TEMPLATE.md", d/"TRAINING_LOG_TEMPLATE.md")
    if (REPO/"docs").is_dir(): shutil.copytree(REPO/"docs", d/"docs", dirs_exist_ok=True)
    (d/"tiny.yaml").write_text(TINY)
    return d

@pytest.fixture(scope="module")
def trained(proj):
    "`loco train tiny.yaml --json` once for the module."
    r = loco("train", proj/"tiny.yaml", "--json", registry=proj/"registry.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)

# ---------------------------------------------------------------- bad input: one line, before training

@pytest.mark.parametrize("edit,needle", [
    (("max_rows: 12", "max_rowz: 12"), "data.max_rowz: unknown key"),
    (("[gsm8k]", "[gsm8k_v2]"), "unknown dataset 'gsm8k_v2'"),
    (("gemma3-270m-q4_k_m", "llama-3.2-3b"), "registry's base model is 'gemma3-270m-q4_k_m'"),
    (("max_rows: 12", "max_rows: 12, min_reference_chars: 100000"), "no training rows are left"),
])
def test_bad_config_fails_in_one_line(proj, edit, needle, tmp_path):
    cfg = tmp_path/"bad.yaml"; cfg.write_text(TINY.replace(*edit))
    r = loco("train", cfg, registry=proj/"registry.yaml")
    one_line_error(r, needle)
    assert not (proj/"adapters"/"tiny-math"/"checkpoint").exists()

def test_missing_config_and_data(proj, tmp_path):
    one_line_error(loco("train", tmp_path/"nope.yaml", registry=proj/"registry.yaml"), "is not a file that exists")
    cfg = tmp_path/"custom.yaml"
    cfg.write_text(TINY.replace("sources: [gsm8k]", "path: missing.jsonl, licence: CC0"))
    one_line_error(loco("train", cfg, registry=proj/"registry.yaml"), "missing.jsonl does not exist")

# ---------------------------------------------------------------- the end-to-end run

def test_train_exports_registers_and_serves(proj, trained):
    from locollm.registry import Registry
    from locollm.backends.llamacpp import LlamaCppBackend
    from locollm.gguf.model import read_gguf
    assert trained["steps"] == 3 and trained["registered"] and trained["tokens"] > 0
    out = proj/"adapters"/"tiny-math"
    assert {p.name for p in out.iterdir()} >= {"peft", "tiny-math.gguf", "config.yaml", "training_log.md", "loss.png", "history.json"}
    assert not (out/"checkpoint").exists()                      # removed after a finished run
    assert read_gguf(out/"tiny-math.gguf").kind == "adapter"
    reg = Registry.load(proj/"registry.yaml", check_files=True)  # every file exists and matches its sha256
    card = reg.adapter("tiny-math")
    assert (card.status, card.active, card.version) == ("candidate", False, "0.0.1")
    assert card.data_licences == ["MIT (GSM8K, © 2021 OpenAI)"] and "Gemma Terms of Use" in card.licence
    assert set(card.sha256) == {"adapters/tiny-math/peft/adapter_config.json", "adapters/tiny-math/peft/adapter_model.safetensors", "adapters/tiny-math/tiny-math.gguf"}
    log = (out/"training_log.md").read_text()
    assert "{{" not in log and "tiny-math" in log and "gsm8k/train.jsonl" in log
    assert json.loads((out/"peft"/"adapter_config.json").read_text())["base_model_name_or_path"] == "gemma3-270m-q4_k_m"
    eng = LlamaCppBackend.from_registry(reg)
    try:
        assert "tiny-math" in eng.adapters
        g = eng.generate("What is 6 * 7?", "tiny-math", max_tokens=8)
        assert g.adapters == {"tiny-math": 1.0} and g.completion_tokens > 0
    finally: eng.close()
    r = loco("registry", "validate", "--json", registry=proj/"registry.yaml")
    assert r.returncode == 0 and json.loads(r.stdout)["valid"], r.stdout + r.stderr

def test_export_gguf_rewrites_and_records(proj, trained, tmp_path):
    from locollm.core import sha256_file
    gguf = proj/"adapters"/"tiny-math"/"tiny-math.gguf"
    before = sha256_file(gguf)
    r = loco("export", "gguf", "tiny-math", "--json", registry=proj/"registry.yaml")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == before == sha256_file(gguf)   # the export is deterministic
    r = loco("export", "gguf", "tiny-math", "--out", tmp_path/"x.gguf", "--json", registry=proj/"registry.yaml")
    assert r.returncode == 0 and sha256_file(tmp_path/"x.gguf") == before
    one_line_error(loco("export", "gguf", "nope", registry=proj/"registry.yaml"), "unknown adapter 'nope'")

# ---------------------------------------------------------------- acceptance: GGUF LoRA == peft adapter

N_PROMPTS, N_POS = 20, 16

def _sequences(tok, fmt):
    """20 (token ids, answer start) pairs: training rows of the four domains in turn (prompts ≤ 200 tokens, answers of
    16 tokens or more), framed as at inference, with 16 answer tokens. The full data gives 5 of each domain; the test
    fixtures' summaries (Gigaword headlines) are shorter, so there the other domains give more."""
    from itertools import chain, zip_longest
    from locollm.training.data import load_split
    per_domain = []
    for d in ("math", "code", "summarisation", "writing"):
        rows = []
        for e in load_split(d, "train"):
            p = tok(fmt.format(prompt=e.prompt))["input_ids"]
            a = tok(e.reference, add_special_tokens=False)["input_ids"][:N_POS]
            if len(a) == N_POS and len(p) <= 200: rows.append((p + a, len(p)))
            if len(rows) == N_PROMPTS: break
        per_domain.append(rows)
    out = [s for s in chain.from_iterable(zip_longest(*per_domain)) if s][:N_PROMPTS]
    assert len(out) == N_PROMPTS
    return out

def _hf_top1(model, seqs):
    import torch
    with torch.no_grad():
        # logits only for the last N_POS + 1 positions: the prompt's last token and the first N_POS - 1 answer tokens (+ the unused last)
        return np.array([model(input_ids=torch.tensor([ids]), logits_to_keep=N_POS + 1).logits[0, :N_POS].argmax(-1).numpy() for ids, s in seqs])

def _llama_model(path: Path):
    "A llama.cpp model and context on the GGUF base (one batch holds a whole sequence)."
    from llama_cpp import Llama
    from locollm.backends.llamacpp import _quiet
    with _quiet(): return Llama(str(path), n_ctx=512, n_batch=512, n_threads=min(2, os.cpu_count() or 1), seed=0, verbose=False)

def _llama_top1(llm, lora, seqs):
    """Top-1 next token from llama.cpp at the same 16 positions, with the GGUF LoRA `lora` (a llama_adapter_lora pointer)
    or none: each sequence is one batch whose output flags are set at those 16 positions only (the 262k-vocabulary output
    layer is the costly part), and the logits are read with llama_get_logits_ith."""
    import ctypes, llama_cpp
    ptrs = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(lora) if lora else None
    scales = (ctypes.c_float * 1)(1.0) if lora else None
    assert llama_cpp.llama_set_adapters_lora(llm.ctx, ptrs, 1 if lora else 0, scales) == 0
    out, V = [], llm.n_vocab()
    for ids, s in seqs:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        b = llm._batch
        b.set_batch(batch=ids, n_past=0, logits_all=False)
        for i in range(len(ids)): b.batch.logits[i] = s - 1 <= i < s - 1 + N_POS
        llm._ctx.decode(b)
        out.append([int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, i), shape=(V,)))) for i in range(s - 1, s - 1 + N_POS)])
    return np.array(out)

def _strong_random_peft(ckpt, path, seed=0, std=0.035):
    "A peft LoRA (r 8, q/k/v/o) with seeded random A and B that visibly changes the model's predictions."
    import torch
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(seed)
    m = get_peft_model(AutoModelForCausalLM.from_pretrained(ckpt), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_" in n: p.normal_(0, std)
    m.save_pretrained(path)
    return Path(path)

def _permute_layers(src: Path, dst: Path, n_layers: int):
    "A deliberately wrong export: the same tensors under mirrored layer numbers (blk.i ↔ blk.N-1-i)."
    import re
    from gguf import GGUFReader
    from locollm.gguf.lora import write_gguf_lora
    r = GGUFReader(str(src))
    t = {x.name: np.array(x.data) for x in r.tensors}
    alpha = float(r.fields["adapter.lora.alpha"].parts[-1][0])
    mirror = lambda n: re.sub(r"blk\.(\d+)\.", lambda m: f"blk.{n_layers - 1 - int(m[1])}.", n)
    pairs = {mirror(k[:-7]): (t[k], t[k[:-7] + ".lora_b"]) for k in t if k.endswith(".lora_a")}
    return write_gguf_lora(dst, "gemma3", pairs, alpha)

@pytest.mark.timeout(1800)   # ≈ 2 min on an idle 2-core machine; generous for a shared one
def test_gguf_lora_agrees_with_peft(proj, trained, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from peft import PeftModel
    from locollm.registry import Registry
    from locollm.gguf.lora import peft_to_gguf_lora
    from locollm.backends.transformers import base_checkpoint
    reg = Registry.load(proj/"registry.yaml")
    ckpt = base_checkpoint(reg)
    tok = AutoTokenizer.from_pretrained(ckpt)
    seqs = _sequences(tok, reg.data.base_model.prompt_format)
    strong = _strong_random_peft(ckpt, tmp_path/"strong")
    peft_to_gguf_lora(strong, tmp_path/"strong.gguf", "gemma3", 18)
    _permute_layers(tmp_path/"strong.gguf", tmp_path/"wrong.gguf", 18)

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32), str(proj/"adapters"/"tiny-math"/"peft"), adapter_name="tiny-math")
    model.load_adapter(str(strong), adapter_name="strong")
    model.eval()
    with model.disable_adapter(): hf = {None: _hf_top1(model, seqs)}
    for name in ("tiny-math", "strong"):
        model.set_adapter(name); hf[name] = _hf_top1(model, seqs)

    import llama_cpp
    from locollm.gguf.model import base_model_path
    llm = _llama_model(base_model_path(reg))
    files = {"tiny-math": reg.root/reg.adapter("tiny-math").files.gguf_lora, "strong": tmp_path/"strong.gguf", "wrong": tmp_path/"wrong.gguf"}
    loras = {k: llama_cpp.llama_adapter_lora_init(llm.model, str(p).encode()) for k, p in files.items()}
    assert all(loras.values())
    try:
        ll = {a: _llama_top1(llm, loras.get(a), seqs) for a in (None, "tiny-math", "strong")}
        ll["wrong"] = _llama_top1(llm, loras["wrong"], seqs[::4])   # the negative control: 5 prompts are enough
    finally:
        llama_cpp.llama_set_adapters_lora(llm.ctx, None, 0, None)
        for p in loras.values(): llama_cpp.llama_adapter_lora_free(p)
        llm.close()

    agree = {a: float((ll[a] == hf[a]).mean()) for a in (None, "tiny-math", "strong")}
    changed = float((hf["strong"] != hf[None]).mean())
    wrong = float((ll["wrong"] == hf["strong"][::4]).mean())
    print(f"\ntop-1 agreement over {N_PROMPTS}×{N_POS}: base {agree[None]:.3f}, tiny-math {agree['tiny-math']:.3f}, strong {agree['strong']:.3f}; "
          f"strong adapter changes {changed:.3f} of base predictions; mirrored-layer export agrees {wrong:.3f}")
    assert ll[None].shape == (N_PROMPTS, N_POS)
    assert agree[None] >= 0.9, "the base models themselves disagree: the comparison would not be fair"
    assert agree["tiny-math"] >= 0.9 and agree["strong"] >= 0.9
    assert changed >= 0.25, "the random adapter is too weak to tell a right export from a wrong one"
    assert wrong < 0.9, "a wrong layer mapping must fail this test"

# ---------------------------------------------------------------- the adapter guide's commands and config

def test_adapter_guide_matches_the_cli():
    "docs/adapter-guide.md §3–5: its example config is valid for the registry, and its commands and flags exist."
    import re
    from locollm.training.train import parse_config
    from locollm.registry import Registry
    guide = (REPO/"docs"/"adapter-guide.md").read_text()
    part = guide[guide.index("## 3. Write the config"):guide.index("## 6.")]
    cfg = parse_config(re.search(r"```yaml\n(.*?)```", part, re.S)[1], "adapter-guide.md")
    assert cfg.base_model == Registry.load(REPO/"registry.yaml").data.base_model.name
    for cmd in re.findall(r"^loco (train|export gguf)\b(.*)$", part, re.M):
        r = subprocess.run([LOCO, *cmd[0].split(), "--help"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for flag in re.findall(r"--[a-z-]+", cmd[1]): assert flag in r.stdout, (cmd, flag)
    for path in re.findall(r"`(configs/[a-z0-9.-]+\.yaml)`", part): assert (REPO/path).is_file(), path

# ---------------------------------------------------------------- data: training never sees an evaluation item

def test_test_splits_are_the_benchmarks_items():
    """locollm.training.data's test items are exactly the evaluation benchmarks' items (same split rules), so training
    excludes all of them."""
    from locollm.training.data import load_split
    from locollm.evals.benchmarks import get_benchmark
    for domain, bench in (("math", "gsm8k"), ("summarisation", "summarisation-rougeL"), ("writing", "writing-judge"),
                          ("general", "general-rougeL")):
        mine, theirs = load_split(domain, "test"), get_benchmark(bench).items()
        assert [e.id for e in mine] == [i.id for i in theirs], domain
        # the benchmark may cut a very long prompt (general: 6,000 characters), never change it
        assert all(e.prompt.startswith(i.prompt) for e, i in zip(mine, theirs)), domain
    try: code = get_benchmark("humaneval").items()
    except Exception as e: pytest.skip(f"code benchmark unavailable: {e}")
    assert [(e.id, e.prompt) for e in load_split("code", "test")] == [(i.id, i.prompt) for i in code if i.id.startswith("mbpp/")]

def test_training_rows_never_overlap_test_items():
    from locollm.training.data import load_split, prepare, _content, ngrams, heldout_index
    for domain in ("math", "code", "summarisation", "writing", "general"):
        test_keys = {e.meta.get("key", e.id) for e in load_split(domain, "test")}
        rows = prepare(domain).train
        assert rows and not {e.meta.get("key", e.id) for e in rows} & test_keys, domain
        ho = heldout_index()
        assert not any(ngrams(_content(e)) & ho.grams for e in rows), domain

# ---------------------------------------------------------------- the generalist (issue 21)

def test_generalist_sees_as_many_rows_as_the_specialists_together():
    """configs/generalist.yaml mixes every domain's training rows and the general prompts in the proportions the swarm's
    active specialists saw them (steps × batch size, from their logs), and trains on as many tokens as they did."""
    from locollm.registry import Registry
    from locollm.training.train import load_config, plan
    reg = Registry.load(REPO/"registry.yaml")
    seen, tokens = {}, {}
    for d in reg.data.domains:
        card = reg.active_adapter(d.name)
        t = load_config(REPO/card.training_config).training
        history = json.loads((REPO/"adapters"/card.name/"history.json").read_text())
        seen[card.name], tokens[card.name] = history["steps"] * t.batch_size * t.grad_accum, history["tokens"]
    g = load_config(REPO/"configs"/"generalist.yaml")
    assert sum(m.rows for m in g.data.mix) + g.data.max_rows == sum(seen.values()), seen
    assert g.training.max_tokens == sum(tokens.values()), tokens   # the same training tokens as the specialists
    domains = {d.name for d in reg.data.domains}
    assert {load_config(REPO/"configs"/m.config).adapter.domain for m in g.data.mix} == domains

@needs_full_data
def test_generalist_trains_on_every_domain_and_the_general_prompts():
    "On the full data the generalist's plan has exactly the rows of its mix, from every domain and the general prompts."
    from locollm.registry import Registry
    from locollm.training.train import load_config, plan
    reg, g = Registry.load(REPO/"registry.yaml"), load_config(REPO/"configs"/"generalist.yaml")
    domains = {d.name for d in reg.data.domains}
    p = plan(g, reg, config_path=REPO/"configs"/"generalist.yaml")
    assert len(p.data.train) == sum(m.rows for m in g.data.mix) + g.data.max_rows
    assert {e.domain for e in p.data.train} == {*domains, "general"}
    assert all(e.prompt == e.prompt.strip() and "step by step" not in e.prompt[:60] for e in p.data.train[:50])
