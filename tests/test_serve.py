"""Issue 13 acceptance: `loco serve` answers the official `openai` client unchanged (chat, stream, auto vs pinned),
says who answered, refuses bad input and overload cleanly, survives a bounded load test with flat memory, and in
sidecar mode routes to a (fake, loopback) multi-LoRA server; `loco export vllm|lorax` write its launch config.
The official `ollama` client works unchanged against its Ollama-compatible endpoints (/api/chat, /api/generate,
/api/tags, /api/show, /api/version)."""
import json, os, socket, subprocess, sys, threading, time
from pathlib import Path
import pytest

pytest.importorskip("starlette"); pytest.importorskip("uvicorn"); httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
import conftest
from locollm.core import sha256_file
from locollm.registry import Registry, promote

LOCO = [sys.executable, "-c", "import locollm.cli.serve; from locollm.cli import main; main()"]
MATH_Q = "How many legs do 3 spiders have in total?"
GENERAL_Q = "Who was the first president of Kenya?"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

class Served:
    "`loco serve` in a subprocess on a free loopback port, ready when /health answers."
    def __init__(self, registry, *args, timeout=180):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([*LOCO, "--registry", str(registry), "serve", "--port", str(self.port), "--threads", "1", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None: raise RuntimeError(f"loco serve exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            if time.time() - t0 > timeout: self.stop(); raise RuntimeError("loco serve did not become healthy")
            time.sleep(0.25)

    def client(self, key="none", **kw):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=kw.pop("timeout", 300), **kw)

    def metrics(self, key=None):
        return httpx.get(self.url + "/metrics?format=json", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=10).json()

    def health(self):
        return httpx.get(self.url + "/health", timeout=10).json()

    def stop(self):
        self.proc.terminate()
        try: self.proc.wait(30)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()

def chat(client, model, content, max_tokens=4, **kw):
    return client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, **kw)

@pytest.fixture(scope="module")
def proj(tmp_path_factory, base_info):
    "The shared `project` (math-a, math-b, code-a with GGUF LoRAs), with math-a promoted: `auto` sends maths to it."
    reg = conftest.project.__wrapped__(tmp_path_factory.mktemp("serve"), base_info)
    promote("math-a", reg, by="test_serve")
    return reg

@pytest.fixture(scope="module")
def server(proj):
    s = Served(proj, "--queue-size", 16)
    yield s
    s.stop()

# ---------------------------------------------------------------- the openai client, unchanged

def test_models_list_auto_adapters_base(server):
    c = server.client()
    assert [m.id for m in c.models.list().data] == ["auto", "math-a", "math-b", "code-a", "base"]
    assert c.models.retrieve("math-a").model_extra["locollm"]["active"] is True

def test_auto_routes_and_says_who_answered(server):
    c = server.client()
    raw = chat(c, "auto", MATH_Q)
    r = raw.parse()
    assert raw.status_code == 200 and isinstance(r.choices[0].message.content, str)
    assert raw.headers["x-locollm-adapter"] == "math-a" and r.model == "math-a"
    conf = float(raw.headers["x-locollm-confidence"])
    assert 0 < conf <= 1 and r.model_extra["locollm"]["confidence"] == pytest.approx(conf, abs=1e-4)
    assert r.model_extra["locollm"]["adapter"] == "math-a" and r.model_extra["locollm"]["domain"] == "math"
    assert r.usage.completion_tokens > 0
    raw = chat(c, "auto", GENERAL_Q)
    assert raw.headers["x-locollm-adapter"] == "base" and raw.parse().model_extra["locollm"]["adapter"] is None

def test_pinned_model_is_the_routed_answer_and_others_differ(server):
    c = server.client()
    q = "Write one sentence about the sea."  # routed to writing: no adapter there, so the base model answers
    auto = chat(c, "auto", MATH_Q, max_tokens=8).parse().choices[0].message.content
    pinned = chat(c, "math-a", MATH_Q, max_tokens=8).parse()
    assert pinned.model_extra["locollm"]["router"] == "manual" and pinned.choices[0].message.content == auto  # greedy: same adapter, same answer
    answers = {m: chat(c, m, q, max_tokens=8).parse().choices[0].message.content for m in ("auto", "base", "code-a")}
    assert answers["auto"] == answers["base"] and answers["code-a"] != answers["base"]

def test_text_completions(server):
    r = server.client().completions.create(model="code-a", prompt="def add(a, b):", max_tokens=4)
    assert r.object == "text_completion" and r.model == "code-a" and isinstance(r.choices[0].text, str)
    assert r.model_extra["locollm"]["adapter"] == "code-a"

def test_stream_matches_the_plain_answer(server):
    c = server.client()
    plain = chat(c, "auto", MATH_Q, max_tokens=8).parse()
    chunks = list(c.chat.completions.create(model="auto", messages=[{"role": "user", "content": MATH_Q}], max_tokens=8, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip() == plain.choices[0].message.content
    assert chunks[0].model_extra["locollm"]["adapter"] == "math-a"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    with c.completions.with_streaming_response.create(model="base", prompt="Name a colour.", max_tokens=4, stream=True) as resp:
        lines = [l for l in resp.iter_lines() if l.startswith("data: ")]
        assert resp.headers["x-locollm-adapter"] == "base" and lines[-1] == "data: [DONE]"

# ---------------------------------------------------------------- bad input: 4xx, never a crash

def test_unknown_model_is_an_openai_404(server):
    with pytest.raises(openai.NotFoundError) as e: chat(server.client(), "gpt-4o", "hi")
    assert e.value.body["code"] == "model_not_found" and "math-a" in e.value.body["message"]

@pytest.mark.parametrize("body,status,code", [(b'{"model": "auto", "messages": [', 400, "invalid_json"), (b"[1, 2]", 400, "invalid_json"),
                                              (b'{"model": "auto"}', 400, None), (b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "n": 2}', 400, None),
                                              (b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}', 400, None),
                                              (b"\xff\xfe not utf-8", 400, "invalid_json")])
def test_malformed_requests(server, body, status, code):
    r = httpx.post(server.url + "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == status and r.json()["error"]["type"] == "invalid_request_error"
    if code: assert r.json()["error"]["code"] == code

def test_huge_prompts(server):
    c = server.client()
    with pytest.raises(openai.BadRequestError) as e: chat(c, "auto", "word " * 60_000)   # 300 KB: longer than the context
    assert e.value.body["code"] == "context_length_exceeded"
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "x" * (2 << 20)}]}, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert chat(c, "auto", "Name a colour.").status_code == 200 and server.health()["status"] == "ok"

def test_client_disconnect_mid_stream_stops_generation(server):
    before = server.metrics()["client_disconnects"]
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=60,
                      json={"model": "base", "stream": True, "max_tokens": 400, "messages": [{"role": "user", "content": "Count from 1 to 200, one number per line."}]}) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"role"' not in line: break   # first token: hang up
    t0 = time.time()
    while time.time() - t0 < 20 and (server.health()["busy_slots"] or server.metrics()["client_disconnects"] == before): time.sleep(0.1)
    assert server.metrics()["client_disconnects"] == before + 1
    assert server.health()["busy_slots"] == 0, "the abandoned generation still holds the model"
    assert chat(server.client(), "auto", MATH_Q).status_code == 200

# ---------------------------------------------------------------- load: no request lost, memory flat

LOAD_N = int(os.environ.get("LOCOLLM_SERVE_LOAD_N", 200))   # a slow shared machine may lower it; CI runs 200
SHORT = ["What is 7 + 5?", "Write a haiku.", "Name a colour.", "Solve 3 x 4.", "Who wrote Hamlet?", "Fix my code.", "Summarise: cats nap.", "Hi!"]

def test_load_200_requests_8_concurrent(server):
    from locollm.serve.load import load_test
    load_test(server.url + "/v1", n=16, concurrency=8, max_tokens=2, prompts=SHORT)   # warm-up: allocations settle
    before = server.metrics()
    res = load_test(server.url + "/v1", n=LOAD_N, concurrency=8, max_tokens=2, prompts=SHORT, pid=server.proc.pid)
    print("\nload test:", json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}))
    assert res["lost"] == 0 and res["failed"] == 0 and res["ok"] == LOAD_N, res["status_counts"]
    after = server.metrics()
    count = lambda m: sum(r["count"] for r in m["requests"] if r["endpoint"] == "/v1/chat/completions")
    assert count(after) - count(before) == LOAD_N                   # the server saw every request once
    assert after["latency_seconds"]["/v1/chat/completions"]["count"] == count(after)
    assert set(res["adapters"]) <= {"math-a", "base"} and res["adapters"].get("math-a", 0) > 0
    growth = res["rss_bytes_end"] - res["rss_bytes_start"]
    assert growth < 32 * 2**20, f"server memory grew {growth / 2**20:.1f} MB over {LOAD_N} requests"
    assert server.health()["status"] == "ok" and server.health()["queue_depth"] == 0

# ---------------------------------------------------------------- overload and API key

@pytest.fixture(scope="module")
def small(proj):
    s = Served(proj, "--queue-size", 1, "--api-key", "sk-test-123")
    yield s
    s.stop()

def test_api_key_required_when_set(small):
    with pytest.raises(openai.AuthenticationError): chat(small.client(), "auto", "hi")
    with pytest.raises(openai.AuthenticationError): chat(small.client("sk-wrong"), "auto", "hi")
    assert chat(small.client("sk-test-123"), "auto", "hi").status_code == 200
    assert httpx.get(small.url + "/health").status_code == 200                     # open: for load balancers
    assert httpx.get(small.url + "/metrics").status_code == 401
    assert "locollm_requests_total" in httpx.get(small.url + "/metrics", headers={"Authorization": "Bearer sk-test-123"}).text

def test_overload_is_429_with_retry_after(small):
    c = small.client("sk-test-123")
    out = [None] * 6
    def one(i):
        try: out[i] = (chat(c, "base", "Count from 1 to 100.", max_tokens=24).status_code, None)
        except openai.APIStatusError as e: out[i] = (e.status_code, e.response.headers.get("retry-after"))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
    codes = sorted(s for s, _ in out)
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 2, codes   # one running + one queued get served
    assert all(ra is not None and int(ra) >= 1 for s, ra in out if s == 429)
    assert small.metrics("sk-test-123")["rejected"] == codes.count(429)
    assert small.health()["status"] == "ok" and chat(c, "auto", "hi").status_code == 200

# ---------------------------------------------------------------- scale-out: export and router sidecar

def fake_peft(folder: Path, rank: int) -> Path:
    "A peft folder with a config and an empty weights file: the exporters read only the config."
    folder.mkdir(parents=True, exist_ok=True)
    (folder/"adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank,
                                                          "base_model_name_or_path": "google/gemma-3-270m",
                                                          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}))
    (folder/"adapter_model.safetensors").write_bytes(b"")
    return folder

@pytest.fixture(scope="module")
def peft_proj(proj):
    "math-a and code-a also get (fake) peft folders; math-b stays GGUF-only."
    with Registry.edit(proj) as reg:
        for name in ("math-a", "code-a"):
            rel = f"adapters/{name}/peft"
            fake_peft(proj.parent/rel, 16 if name == "code-a" else 8)
            card = reg.adapter(name)
            card.files = card.files.model_copy(update={"peft": rel})
            card.sha256 = {**card.sha256, **{f"{rel}/{f}": sha256_file(proj.parent/rel/f) for f in ("adapter_config.json", "adapter_model.safetensors")}}
    return proj

def test_export_vllm_and_lorax(peft_proj, tmp_path):
    r = subprocess.run([*LOCO, "--registry", str(peft_proj), "export", "vllm", "--out", str(tmp_path/"vllm")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "skipped adapter 'math-b': no peft files" in r.stderr
    script = (tmp_path/"vllm/serve-vllm.sh").read_text()
    root = peft_proj.parent.resolve()
    assert "vllm serve google/gemma-3-270m" in script and "--enable-lora" in script and "--max-lora-rank 16" in script
    assert f"--lora-modules math-a={root}/adapters/math-a/peft code-a={root}/adapters/code-a/peft" in script
    assert subprocess.run(["bash", "-n", str(tmp_path/"vllm/serve-vllm.sh")]).returncode == 0
    assert json.loads((tmp_path/"vllm/upstream.json").read_text())["models"] == {"math-a": "math-a", "code-a": "code-a"}
    r = subprocess.run([*LOCO, "--registry", str(peft_proj), "export", "lorax", "--out", str(tmp_path/"lorax"), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["adapters"] == ["math-a", "code-a"] and any("math-b" in w for w in res["warnings"])
    ids = {a["name"]: a["adapter_id"] for a in json.loads((tmp_path/"lorax/lorax.json").read_text())["adapters"]}
    assert ids == {"math-a": "/data/adapters/math-a/peft", "code-a": "/data/adapters/code-a/peft"}

def fake_upstream():
    "A loopback stand-in for vLLM's OpenAI API: answers 'echo from <model>', records what it was sent."
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route
    from locollm.serve.server import serve_in_thread
    seen = []
    async def chat(request):
        body = await request.json(); seen.append(body)
        text = f"echo from {body['model']}"
        if body.get("stream"):
            async def sse():
                for w in text.split(" "):
                    yield "data: " + json.dumps({"id": "up-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                                                 "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]}) + "\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(sse(), media_type="text/event-stream")
        return JSONResponse({"id": "up-1", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}})
    url, stop = serve_in_thread(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]))
    return url, stop, seen

def test_router_sidecar_forwards_to_the_chosen_adapter(peft_proj, tmp_path):
    subprocess.run([*LOCO, "--registry", str(peft_proj), "export", "vllm", "--out", str(tmp_path/"vllm")], capture_output=True, check=True)
    up, stop_up, seen = fake_upstream()
    side = Served(peft_proj, "--upstream", up + "/v1", "--upstream-map", tmp_path/"vllm/upstream.json")
    try:
        c = side.client()
        assert [m.id for m in c.models.list().data] == ["auto", "math-a", "code-a", "base"]
        raw = chat(c, "auto", MATH_Q)
        r = raw.parse()
        assert seen[-1]["model"] == "math-a" and r.choices[0].message.content == "echo from math-a"
        assert raw.headers["x-locollm-adapter"] == "math-a" and r.model_extra["locollm"]["upstream_model"] == "math-a"
        assert seen[-1]["messages"] == [{"role": "user", "content": MATH_Q}] and seen[-1]["max_tokens"] == 4   # the rest goes on unchanged
        chat(c, "auto", GENERAL_Q); assert seen[-1]["model"] == "gemma3-270m-q4_k_m"    # base: the registry's base-model name
        chat(c, "code-a", "hi"); assert seen[-1]["model"] == "code-a"
        with pytest.raises(openai.NotFoundError): chat(c, "math-b", "hi")                  # not on the upstream
        chunks = list(c.chat.completions.create(model="auto", messages=[{"role": "user", "content": MATH_Q}], max_tokens=4, stream=True))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "echo from math-a "
        r = httpx.post(side.url + "/api/chat", json={"model": "auto", "messages": [{"role": "user", "content": MATH_Q}]}, timeout=30)
        assert r.status_code == 501 and "/v1" in r.json()["error"]                        # Ollama's API: local models only
        stop_up()
        with pytest.raises(openai.APIStatusError) as e: chat(c, "auto", MATH_Q)
        assert e.value.status_code == 502 and e.value.body["code"] == "upstream_unreachable"
        assert side.health()["status"] == "ok"
    finally:
        side.stop(); stop_up()

# ---------------------------------------------------------------- Ollama's API: the official `ollama` client, unchanged

class EchoBackend:
    "A stand-in backend (no model, milliseconds): answers with the prompt's words, one token per word."
    name = "echo"
    def __init__(self, adapters=(), delay=0.0): self._ads, self.delay = list(adapters), delay
    @property
    def adapters(self): return self._ads
    def add_adapter(self, name, path): self._ads.append(name)
    def generate(self, prompt, adapters=None, *, max_tokens=256, on_token=None, **kw):
        from locollm.backends.base import Generation, adapter_set
        words = prompt.split()[:max_tokens]
        for w in words:
            time.sleep(self.delay)
            if on_token: on_token(w + " ")
        return Generation(text=" ".join(words), adapters=adapter_set(adapters), backend=self.name, prompt_tokens=len(prompt.split()),
                          completion_tokens=len(words), prompt_ms=1.0, total_ms=2.0, finish_reason="length" if len(words) == max_tokens else "stop")
    def close(self): pass

@pytest.fixture(scope="module")
def ol():
    return pytest.importorskip("ollama")

def echo_serve(registry, **kw):
    "An in-process server on the echo backend (the project's adapters, its router), on a free port: (url, stop)."
    from locollm.serve.server import SwarmServer, create_app, serve_in_thread
    be = EchoBackend(["math-a", "math-b", "code-a"], delay=kw.pop("delay", 0.0))
    return serve_in_thread(create_app(SwarmServer(Registry.load(registry), backends=[be], **kw)))

@pytest.fixture(scope="module")
def echo(proj):
    url, stop = echo_serve(proj)
    yield url
    stop()

def user(content): return [{"role": "user", "content": content}]

def test_ollama_chat_auto_and_pinned(ol, echo):
    c = ol.Client(host=echo)
    r = c.chat(model="auto", messages=user(MATH_Q))
    assert r.model == "math-a" and r.message.role == "assistant" and r.message.content == MATH_Q   # routed to math-a; echoed
    n = len(MATH_Q.split())
    assert r.done and r.done_reason == "stop" and r.eval_count == n and r.prompt_eval_count == n and r.total_duration > 0
    assert r.created_at.endswith("Z")
    assert c.chat(model="auto:latest", messages=user(GENERAL_Q)).model == "base"                  # general: the base model
    for name in ("code-a", "code-a:latest"):
        assert c.chat(model=name, messages=user(MATH_Q)).model == "code-a"                       # pinned: not routed
    assert c.chat(model="base", messages=user(MATH_Q)).model == "base"

def test_ollama_answers_say_who_answered(echo):
    r = httpx.post(echo + "/api/chat", json={"model": "auto", "stream": False, "messages": user(MATH_Q)}, timeout=30)
    body, conf = r.json(), float(r.headers["x-locollm-confidence"])
    assert r.headers["x-locollm-adapter"] == "math-a" and body["locollm"]["adapter"] == "math-a" and body["locollm"]["domain"] == "math"
    assert 0 < conf <= 1 and body["locollm"]["confidence"] == pytest.approx(conf, abs=1e-4)
    r = httpx.post(echo + "/api/generate", json={"model": "code-a:latest", "prompt": MATH_Q, "stream": False}, timeout=30)
    assert r.json()["locollm"]["router"] == "manual" and r.headers["x-locollm-adapter"] == "code-a" and r.json()["response"] == MATH_Q

def test_ollama_generate_with_system_and_options(ol, echo):
    r = ol.Client(host=echo).generate(model="base", prompt="What is 2+2?", system="Be brief.", options={"num_predict": 3, "temperature": 0})
    assert r.model == "base" and r.response == "Be brief. What" and r.done and r.done_reason == "length" and r.eval_count == 3

def test_ollama_streams(ol, echo):
    c = ol.Client(host=echo)
    parts = list(c.chat(model="auto", messages=user(MATH_Q), stream=True, options={"num_predict": 4}))
    assert "".join(p.message.content for p in parts).strip() == " ".join(MATH_Q.split()[:4])
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done and parts[-1].done_reason == "length" and parts[-1].eval_count == 4
    assert {p.model for p in parts} == {"math-a"}
    gen = list(c.generate(model="base", prompt="one two three", stream=True))
    assert "".join(g.response for g in gen) == "one two three " and gen[-1].done_reason == "stop"
    with httpx.stream("POST", echo + "/api/generate", json={"model": "auto", "prompt": "Write a haiku about rain"}, timeout=30) as r:  # streams by default
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(l) for l in r.iter_lines() if l]
    assert len(lines) > 2 and lines[0]["locollm"]["domain"] == "writing" and lines[-1]["done"] and lines[-1]["locollm"]["total_ms"] >= 0
    assert not any(l["done"] for l in lines[:-1])

def test_ollama_load_request(ol, echo):
    c = ol.Client(host=echo)
    assert c.generate(model="auto").done_reason == "load" and c.chat(model="math-a", messages=[]).done_reason == "load"

def test_ollama_tags_show_version(ol, echo):
    c = ol.Client(host=echo)
    models = c.list().models
    assert [m.model for m in models] == ["auto:latest", "math-a:latest", "math-b:latest", "code-a:latest", "base:latest"]
    m = models[1]
    assert m.size > 0 and len(m.digest) == 64 and m.details.format == "gguf" and m.details.family == "gemma3"
    raw = httpx.get(echo + "/api/tags", timeout=10).json()["models"][1]
    assert raw["locollm"]["active"] is True and raw["locollm"]["domain"] == "math"
    s = c.show("math-a:latest")
    assert "{{ .Prompt }}" in s.template and s.modelinfo["general.architecture"] == "gemma3" and s.license == "MIT" and "completion" in s.capabilities
    assert isinstance(httpx.get(echo + "/api/version", timeout=10).json()["version"], str)

def test_ollama_unknown_model_is_a_404(ol, echo):
    c = ol.Client(host=echo)
    with pytest.raises(ol.ResponseError) as e: c.chat(model="llama3.2", messages=user("hi"))
    assert e.value.status_code == 404 and "math-a" in e.value.error
    with pytest.raises(ol.ResponseError) as e: list(c.generate(model="math-a:v2", prompt="hi", stream=True))   # only :latest is a tag we know
    assert e.value.status_code == 404
    with pytest.raises(ol.ResponseError) as e: c.show("nope")
    assert e.value.status_code == 404

@pytest.mark.parametrize("path,body,status", [
    ("/api/chat", b'{"model": "auto", "messages": [', 400), ("/api/generate", b"[1, 2]", 400), ("/api/generate", b"\xff\xfe not utf-8", 400),
    ("/api/chat", b'{"messages": [{"role": "user", "content": "x"}]}', 400),
    ("/api/generate", b'{"model": "auto", "prompt": "x", "options": {"num_predict": 100000}}', 400),
    ("/api/generate", b'{"model": "auto", "prompt": "x", "options": {"temperature": "hot"}}', 400),
    ("/api/generate", b'{"model": "auto", "prompt": "x", "options": "fast"}', 400),
    ("/api/chat", b'{"model": "auto", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}', 400),
    ("/api/chat", b'{"model": "auto", "messages": [{"role": "assistant", "content": "x"}]}', 400),
    ("/api/generate", b'{"model": "nope", "prompt": "x"}', 404), ("/api/nope", b"{}", 404)])
def test_ollama_malformed_requests(echo, path, body, status):
    r = httpx.post(echo + path, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == status and list(r.json()) == ["error"] and isinstance(r.json()["error"], str) and r.json()["error"]

def test_ollama_api_key_overload_and_metrics(ol, proj):
    url, stop = echo_serve(proj, delay=0.2, queue_size=0, api_key="sk-ollama")
    try:
        with pytest.raises(ol.ResponseError) as e: ol.Client(host=url).chat(model="auto", messages=user("hi"))
        assert e.value.status_code == 401
        c = ol.Client(host=url, headers={"Authorization": "Bearer sk-ollama"})
        out = [None] * 3
        def one(i):
            try: out[i] = c.generate(model="base", prompt="a b c").done_reason
            except ol.ResponseError as e: out[i] = (e.status_code, e.error)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in threads: t.start()
        for t in threads: t.join()
        busy = [o for o in out if o != "stop"]
        assert "stop" in out and busy and all(s == 429 and "busy" in msg for s, msg in busy), out   # one model, no queue
        m = httpx.get(url + "/metrics?format=json", headers={"Authorization": "Bearer sk-ollama"}, timeout=10).json()
        counts = {(r["endpoint"], r["status"]): r["count"] for r in m["requests"]}
        assert counts[("/api/generate", 200)] == out.count("stop") and counts[("/api/generate", 429)] == len(busy) == m["rejected"]
        assert counts[("/api/chat", 401)] == 1
    finally:
        stop()

def test_ollama_client_on_the_real_model(ol, server):
    "The real base model with random LoRAs: the same greedy answer as through the OpenAI API; streamed = whole."
    said = chat(server.client(), "auto", MATH_Q, max_tokens=6).parse().choices[0].message.content
    c = ol.Client(host=server.url, timeout=300)
    r = c.chat(model="auto", messages=user(MATH_Q), options={"num_predict": 6})
    assert r.model == "math-a" and r.message.content == said and r.eval_count > 0 and r.done_reason in ("stop", "length")
    whole = c.generate(model="code-a:latest", prompt="def add(a, b):", options={"num_predict": 6})
    parts = list(c.generate(model="code-a", prompt="def add(a, b):", options={"num_predict": 6}, stream=True))
    assert whole.model == "code-a" and "".join(p.response for p in parts).strip() == whole.response and parts[-1].eval_count == whole.eval_count

# ---------------------------------------------------------------- --slots: one model, continuous batching (issue 24)

@pytest.fixture(scope="module")
def batched(proj):
    s = Served(proj, "--slots", 4, "--queue-size", 16)
    yield s
    s.stop()

def test_batched_server_answers_alone_exactly_and_routes_the_same_under_load(server, batched):
    from concurrent.futures import ThreadPoolExecutor
    asks = [(m, q) for q in (MATH_Q, GENERAL_Q, *SHORT[:4]) for m in ("auto", "base", "math-a", "code-a")]
    def answers(s, clients):
        c = s.client()
        def one(mq):
            r = chat(c, mq[0], mq[1], max_tokens=16)
            return r.headers["x-locollm-adapter"], r.parse().choices[0].message.content
        with ThreadPoolExecutor(clients) as ex: return list(ex.map(one, asks))
    alone = answers(server, 1)
    assert answers(batched, 1) == alone            # a batch of one: the single-request arithmetic, token for token
    together = answers(batched, 8)                 # batched: other rounding (nbs/21a), so only the routing must agree
    assert [a for a, _ in together] == [a for a, _ in alone] and all(isinstance(t, str) for _, t in together)
    m = batched.metrics()
    assert m["batch_slots"] == 4 and 1 < m["batch_size_mean"] <= 4, m
    assert set(m["adapter_queue_depth"]) >= {"base", "math-a", "code-a"} and m["busy_slots"] == 0
    text = httpx.get(batched.url + "/metrics", timeout=10).text
    assert 'locollm_adapter_sequences{adapter="math-a"} 0' in text and "locollm_batch_size_mean" in text

def test_batched_server_frees_a_slot_when_the_client_hangs_up(batched):
    with httpx.stream("POST", batched.url + "/v1/chat/completions", timeout=60,
                      json={"model": "base", "stream": True, "max_tokens": 400,
                            "messages": [{"role": "user", "content": "Count from 1 to 200, one number per line."}]}) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"role"' not in line: break
    t0 = time.time()
    while time.time() - t0 < 20 and sum(batched.metrics()["adapter_sequences"].values()): time.sleep(0.1)
    assert sum(batched.metrics()["adapter_sequences"].values()) == 0, "the abandoned sequence still decodes"
    assert chat(batched.client(), "auto", MATH_Q).status_code == 200

@pytest.mark.parametrize("extra, wrong", [(["--pool", "2"], "--pool"), (["--backend", "ollama"], "--backend"),
                                          (["--upstream", "http://127.0.0.1:9/v1"], "--upstream")])
def test_slots_go_with_one_llama_cpp_model_only(proj, extra, wrong):
    r = subprocess.run([*LOCO, "--registry", str(proj), "serve", "--slots", "4", "--port", str(free_port()), *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"--slots batches one llama.cpp model: it does not go with {wrong}" in r.stderr, r.stderr
