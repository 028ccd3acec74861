"""Issue 4, Ollama backend: `loco export ollama`, the OllamaBackend and `loco ask --backend ollama`, end to end
through the real `ollama` client against tests/fake_ollama.py (no Ollama server can be installed here).

The fake answers with the real embedded engine (engine="llama.cpp") where answers matter, and with a
deterministic echo where only the protocol does."""
import json, os, subprocess, sys
import ollama
import pytest
from conftest import LOCO, make_project
from fake_ollama import FakeOllama, free_port
from locollm.core import LocoError, sha256_file
from locollm.registry import Registry
from locollm.backends.ollama import OllamaBackend, export_ollama, ollama_template

def loco(*args, registry, host, env=None, timeout=600):
    cmd = [LOCO]
    e = {**os.environ, "LOCOLLM_REGISTRY": str(registry), "OLLAMA_HOST": host, **(env or {})}
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout)

def one_line_error(r, *needles):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles: assert n in lines[0], lines[0]

@pytest.fixture(scope="module")
def proj(tmp_path_factory, base_info): return make_project(tmp_path_factory.mktemp("proj"), base_info)

@pytest.fixture(scope="module")
def server():
    with FakeOllama(engine="llama.cpp") as s: yield s

@pytest.fixture(scope="module")
def exported(proj, server):
    "`loco export ollama math-a --keep-alive 30m --json`, once for the module."
    r = loco("export", "ollama", "math-a", "--keep-alive", "30m", "--json", registry=proj, host=server.host)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

@pytest.fixture
def echo():
    with FakeOllama(engine="echo") as s: yield s

# --- export -----------------------------------------------------------------------------------

def test_export_creates_the_model_and_records_it(proj, server, exported):
    assert exported["model"] == "locollm-math-a" and exported["mode"] == "lora"
    assert {"locollm-math-a:latest", "locollm-gemma3-270m-q4_k_m:latest"} <= set(server.models)
    m = server.models["locollm-math-a:latest"]
    assert list(m["adapters"].values()) == [f"sha256:{sha256_file(proj.parent/'adapters/math-a/math-a.gguf')}"]
    assert m["parameters"]["stop"] == ["\n### ", "\n\n\n"] and m["parameters"]["temperature"] == 0.0
    reg = Registry.load(proj)
    assert m["template"] == ollama_template(reg.data.base_model.prompt_format, reg.adapter("math-a").prompt_template)
    assert reg.adapter("math-a").files.ollama_model == "locollm-math-a"
    mf = (proj.parent/"adapters/math-a/Modelfile").read_text()
    assert "\nADAPTER math-a.gguf\n" in mf and '\nTEMPLATE """### Instruction:\n{{ .Prompt }}\n\n### Response:\n"""\n' in mf
    r = subprocess.run([LOCO, "registry", "validate", str(proj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_keep_alive_loads_the_model(server, exported):
    import datetime as dt
    ps = {m.model: m for m in ollama.Client(host=server.host).ps().models}
    left = ps["locollm-math-a:latest"].expires_at - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=29) < left <= dt.timedelta(minutes=30)

def test_tags_show_delete(proj, echo):
    res = export_ollama("base", proj, host=echo.host)
    c = ollama.Client(host=echo.host)
    assert [m.model for m in c.list().models] == [res["model"] + ":latest"]
    shown = c.show(res["model"])
    assert shown.template == "### Instruction:\n{{ .Prompt }}\n\n### Response:\n" and '"\\n### "' in shown.parameters
    assert shown.modelinfo["general.architecture"] == "gemma3"
    c.delete(res["model"])
    assert c.list().models == []
    with pytest.raises(ollama.ResponseError) as e: c.show(res["model"])
    assert e.value.status_code == 404

def test_export_errors_are_one_line(proj, echo):
    one_line_error(loco("export", "ollama", "nope", registry=proj, host=echo.host), "unknown adapter 'nope'")
    one_line_error(loco("export", "ollama", "math-a", registry=proj, host=f"127.0.0.1:{free_port()}"), "cannot reach the Ollama server", "ollama serve")

# --- the backend --------------------------------------------------------------------------------

def test_stream_and_whole_answers_agree(proj, server, exported):
    b = OllamaBackend.from_registry(Registry.load(proj), host=server.host)
    pieces = []
    g = b.generate("Name a colour.", "math-a", max_tokens=12, on_token=pieces.append)
    assert g.backend == "ollama" and g.adapters == {"math-a": 1.0} and len(pieces) > 1 and "".join(pieces).strip() == g.text
    assert 0 < g.completion_tokens <= 12 and g.prompt_tokens > 5 and 0 < g.prompt_ms <= g.total_ms
    whole = ollama.Client(host=server.host).generate("locollm-math-a", "### Instruction:\nName a colour.\n\n### Response:\n", raw=True, stream=False,
                                                     options={"temperature": 0, "num_predict": 12, "stop": ["\n### ", "\n\n\n"]})
    assert whole.done and whole.response.strip() == g.text and whole.eval_count == g.completion_tokens
    chat = ollama.Client(host=server.host).chat("locollm-math-a", messages=[{"role": "user", "content": "Name a colour."}],
                                                options={"temperature": 0, "num_predict": 12})
    assert chat.message.role == "assistant" and chat.message.content.strip() == g.text  # same TEMPLATE frame → same answer
    b.close()

def test_same_answers_as_the_embedded_backend(proj, server, exported):
    from locollm.backends.llamacpp import LlamaCppBackend
    reg = Registry.load(proj)
    ob, emb = OllamaBackend.from_registry(reg, host=server.host), LlamaCppBackend.from_registry(reg)
    try:
        for ad in (None, "math-a"):
            assert ob.generate("What is 17 times 3?", ad, max_tokens=10).text == emb.generate("What is 17 times 3?", ad, max_tokens=10).text
        assert ob.generate("What is 17 times 3?", "math-a", max_tokens=10).text != ob.generate("What is 17 times 3?", None, max_tokens=10).text
    finally: ob.close(); emb.close()

def test_the_repetition_guard_stops_a_loop_like_the_embedded_backend(proj, server, exported):
    from locollm.backends.llamacpp import LlamaCppBackend
    reg, chant = Registry.load(proj), "Repeat after me: ha ha, ho ho, ha ha, ho ho, ha ha, ho ho,"
    ob, emb = OllamaBackend.from_registry(reg, host=server.host), LlamaCppBackend.from_registry(reg)
    try:
        g, e = ob.generate(chant, max_tokens=96, raw=True), emb.generate(chant, max_tokens=96, raw=True)
        assert (g.finish_reason, g.text) == ("repetition", e.text) and e.finish_reason == "repetition"
        ob.repeat_span = 0
        assert ob.generate(chant, max_tokens=96, raw=True).finish_reason == "length"
    finally: ob.close(); emb.close()

def test_composition_is_refused(proj, server, exported):
    b = OllamaBackend.from_registry(Registry.load(proj), host=server.host)
    with pytest.raises(LocoError, match="cannot compose or scale adapters"): b.generate("hi", {"math-a": 1.0, "math-b": 1.0})
    with pytest.raises(LocoError, match="cannot compose or scale adapters"): b.generate("hi", {"math-a": 0.5})

def test_an_engine_without_lora_support_says_merge(proj, base_info):
    with FakeOllama(engine="echo", lora_supported=False) as s:
        export_ollama("math-a", proj, host=s.host)
        b = OllamaBackend.from_registry(Registry.load(proj), host=s.host)
        with pytest.raises(LocoError, match=r"loco export ollama math-a --merged"): b.generate("hi", "math-a")
        assert b.generate("hi", None, max_tokens=3).text.startswith("echo:")  # the base model still answers

# --- loco ask --backend ollama ----------------------------------------------------------------------

def test_loco_ask_backend_ollama(proj, server, exported):
    q = "How many legs do 3 spiders have in total?"
    r = loco("ask", q, "--backend", "ollama", "--adapter", "math-a", "--max-tokens", "12", "--json", registry=proj, host=server.host)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["backend"] == "ollama" and a["adapter"] == "math-a" and a["completion_tokens"] > 0
    emb = subprocess.run([LOCO, "ask", q, "--adapter", "math-a", "--max-tokens", "12", "--json"], capture_output=True, text=True,
                         env={**os.environ, "LOCOLLM_REGISTRY": str(proj)})
    assert emb.returncode == 0, emb.stderr
    assert json.loads(emb.stdout)["answer"] == a["answer"]  # the embedded default gives the same answer
    routed = loco("ask", q, "--backend", "ollama", "--max-tokens", "6", "--json", registry=proj, host=server.host, env={"LOCOLLM_OLLAMA_KEEP_ALIVE": "0"})
    assert routed.returncode == 0, routed.stderr
    ra = json.loads(routed.stdout)
    assert ra["backend"] == "ollama" and ra["adapter"] is None  # no adapter is active: the base model's Ollama model answered
    assert server.requests[-1][2]["keep_alive"] == 0 and "locollm-gemma3-270m-q4_k_m:latest" not in {m["name"] for m in server.ps()}

def test_model_missing_is_one_line(proj, server, exported):
    one_line_error(loco("ask", "What is 2+2?", "--backend", "ollama", "--adapter", "math-b", registry=proj, host=server.host),
                   "no model 'locollm-math-b'", "loco export ollama math-b")

def test_server_down_is_one_line(proj):
    one_line_error(loco("ask", "What is 2+2?", "--backend", "ollama", registry=proj, host=f"127.0.0.1:{free_port()}"),
                   "cannot reach the Ollama server at http://127.0.0.1:", "ollama serve", "OLLAMA_HOST")

# --- the merged 4-bit path ------------------------------------------------------------------------------

def test_export_merged(proj, server, exported, base_info):
    before = Registry.load(proj).adapter("math-a").files
    r = loco("export", "ollama", "math-a", "--merged", "--json", registry=proj, host=server.host)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    merged = proj.parent/"adapters/math-a/merged-q4_k_m.gguf"
    assert res["mode"] == "merged" and res["from"] == str(merged) and res["lora"] is None
    assert Registry.load(proj, check_files=True).adapter("math-a").files == before  # a local build: the registry only names the Ollama model
    m = server.models["locollm-math-a:latest"]
    assert m["adapters"] == {} and list(m["files"].values()) == [f"sha256:{sha256_file(merged)}"]
    mf = (proj.parent/"adapters/math-a/Modelfile").read_text()
    assert "\nFROM merged-q4_k_m.gguf\n" in mf and "ADAPTER" not in mf
    b = OllamaBackend.from_registry(Registry.load(proj), host=server.host)
    assert b.generate("What is 17 times 3?", "math-a", max_tokens=10).text != b.generate("What is 17 times 3?", None, max_tokens=10).text
    stamp = merged.stat().st_mtime_ns
    assert loco("export", "ollama", "math-a", "--merged", registry=proj, host=server.host).returncode == 0
    assert merged.stat().st_mtime_ns == stamp  # up to date: not merged again
    from locollm.gguf.lora import random_lora, target_shapes
    random_lora(proj.parent/"adapters/math-a/math-a.gguf", target_shapes(base_info.path), "gemma3", seed=42, std=0.05)  # "retrained"
    assert loco("export", "ollama", "math-a", "--merged", registry=proj, host=server.host).returncode == 0
    assert merged.stat().st_mtime_ns != stamp  # stale: merged again from the new LoRA

