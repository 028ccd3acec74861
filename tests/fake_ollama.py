"""A small stand-in for `ollama serve`, for tests: the endpoints the official `ollama` client uses, with
the JSON shapes of Ollama's API documentation (docs/api.md), NDJSON streaming and `{"error": ...}` errors.

It listens on 127.0.0.1 (a free port) in a background thread:

    with FakeOllama() as server:            # engine="llama.cpp" (default) or "echo"
        os.environ["OLLAMA_HOST"] = server.host
        ...

Endpoints: GET /api/version, /api/tags, /api/ps; HEAD and POST /api/blobs/:digest; POST /api/create,
/api/show, /api/generate, /api/chat; DELETE /api/delete. Unknown paths get Go's plain-text
"404 page not found", unknown models a 404 with {"error": ...}.

Models are what /api/create made of uploaded blobs: `files` (one GGUF model), `adapters` (GGUF LoRAs),
`template`, `parameters`, `system`, `license`, or `from` another model. With engine="llama.cpp" the fake
answers with the real embedded engine (locollm.backends.llamacpp.LlamaCppBackend) running the uploaded GGUF with the
uploaded LoRAs, so an answer through the fake is what Ollama-with-llama.cpp would say; engine="echo" answers
deterministically without a model ("echo: <last words of the prompt>"). `lora_supported=False` mimics the
current Ollama engine for gemma3, which accepts ADAPTER at create time but fails at the first request
with "loras are not yet implemented". Every request is logged in `.requests` (method, path, JSON body).
"""
from __future__ import annotations
import datetime as dt, hashlib, json, re, shutil, socket, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = "0.0.0-locollm-fake"

def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on (closed again before returning)."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def _now() -> str: return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")

def full_name(name: str) -> str:
    "Ollama model names default to the `latest` tag."
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

def keep_alive_seconds(v) -> float | None:
    "Seconds from an Ollama keep_alive (number of seconds, or '5m', '1h30m', '-1'); None = forever, 0 = unload now."
    if v is None: return 300.0
    if isinstance(v, (int, float)): s = float(v)
    else:  # a string is a Go duration (time.ParseDuration): units required, except for "0"
        v, sign = str(v).strip(), 1.0
        if v.lstrip("+-") == "0": return 0.0
        if v[:1] in "+-": sign, v = (-1.0 if v[0] == "-" else 1.0), v[1:]
        parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", v)
        if not parts or "".join(a + b for a, b in parts) != v:
            raise ValueError(f"time: missing unit in duration \"{v}\"" if re.fullmatch(r"[\d.]+", v) else f"time: invalid duration \"{v}\"")
        s = sign * sum(float(a) * {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[b] for a, b in parts)
    return None if s < 0 else s

def render_template(template: str, prompt: str = "", system: str = "", response: str = "") -> str:
    "A tiny subset of Go's text/template as Ollama uses it: {{ .Prompt }}, {{ .System }}, {{ .Response }}, {{ if .X }}…{{ end }}, {{\"lit\"}}."
    vals = {"Prompt": prompt, "System": system, "Response": response}
    out = re.sub(r"{{-?\s*if\s+\.(\w+)\s*-?}}(.*?){{-?\s*end\s*-?}}", lambda m: m[2] if vals.get(m[1]) else "", template, flags=re.S)
    out = re.sub(r"{{-?\s*\.(\w+)\s*-?}}", lambda m: vals.get(m[1], ""), out)
    return re.sub(r'{{-?\s*"((?:[^"\\]|\\.)*)"\s*-?}}', lambda m: json.loads(f'"{m[1]}"'), out)

class FakeOllama:
    "An in-process fake Ollama server; see the module docstring."
    def __init__(self, engine: str = "llama.cpp", lora_supported: bool = True, port: int | None = None):
        assert engine in ("llama.cpp", "echo")
        self.engine, self.lora_supported = engine, lora_supported
        self.blob_dir = Path(tempfile.mkdtemp(prefix="fake-ollama-"))
        self.blobs: dict[str, Path] = {}
        self.models: dict[str, dict] = {}
        self.running: dict[str, float | None] = {}   # model -> expiry (epoch s), None = forever
        self.requests: list[tuple[str, str, dict | None]] = []
        self.lock = threading.RLock()
        self._backends: dict[str, object] = {}
        self._conns: set = set()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port or 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str: return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "FakeOllama":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        "Stop serving and drop open (keep-alive) connections, as a stopped `ollama serve` would."
        self._httpd.shutdown(); self._httpd.server_close()
        for c in list(self._conns):
            try: c.shutdown(socket.SHUT_RDWR)
            except OSError: pass
            c.close()
        for b in self._backends.values(): b.close()
        self._backends.clear()
        shutil.rmtree(self.blob_dir, ignore_errors=True)

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()

    # --- models -------------------------------------------------------------------------------
    def model(self, name: str) -> dict | None:
        return self.models.get(full_name(name))

    def _gguf_meta(self, path: Path) -> dict:
        from locollm.gguf.model import read_gguf
        i = read_gguf(path)
        return {"kind": i.kind, "architecture": i.architecture, "size": i.size_bytes}

    def create(self, req: dict):
        "Yields progress dicts; raises _Error for a bad request."
        name = req.get("model") or req.get("name")
        if not name: raise _Error(400, "model is required")
        if req.get("quantize"): raise _Error(400, "quantization is only supported for F16 and F32 models")
        m = {"files": {}, "adapters": {}, "template": "{{ .Prompt }}", "parameters": {}, "system": "", "license": [], "from": None}
        if frm := req.get("from"):
            parent = self.model(frm)
            if parent is None: raise _Error(404, f"model '{frm}' not found")
            m = json.loads(json.dumps(parent)) | {"from": full_name(frm)}
            yield {"status": f"using model {full_name(frm)}"}
        if files := req.get("files"):
            if len(files) != 1: raise _Error(400, "the fake server takes exactly one GGUF file in `files`")
            for fname, digest in files.items():
                if digest not in self.blobs: raise _Error(400, f"blob {digest} not found: push it with POST /api/blobs/{digest} first")
                meta = self._gguf_meta(self.blobs[digest])
                if meta["kind"] != "model": raise _Error(400, f"{fname} is a GGUF {meta['kind']}, not a model")
                m["files"] = {fname: digest}
                yield {"status": "parsing GGUF"}
                yield {"status": f"using existing layer {digest}"}
        if not m["files"]: raise _Error(400, "neither 'from' nor 'files' was specified")
        base_arch = self._gguf_meta(self.blobs[next(iter(m["files"].values()))])["architecture"]
        for fname, digest in (req.get("adapters") or {}).items():
            if digest not in self.blobs: raise _Error(400, f"blob {digest} not found: push it with POST /api/blobs/{digest} first")
            meta = self._gguf_meta(self.blobs[digest])
            if meta["kind"] != "adapter": raise _Error(400, f"{fname} is not a LoRA adapter")
            if meta["architecture"] != base_arch: raise _Error(400, f"adapter {fname} is for {meta['architecture']}, the model is {base_arch}")
            m["adapters"][fname] = digest
            yield {"status": f"using existing layer {digest}"}
        for k in ("template", "system"):
            if req.get(k) is not None: m[k] = req[k]; yield {"status": f"creating {k} layer"}
        if req.get("parameters"): m["parameters"] = {**m["parameters"], **req["parameters"]}; yield {"status": "creating parameters layer"}
        if req.get("license"): m["license"] = [req["license"]] if isinstance(req["license"], str) else list(req["license"])
        m["modified_at"] = _now()
        m["digest"] = hashlib.sha256(json.dumps({k: m[k] for k in ("files", "adapters", "template", "parameters", "system")}, sort_keys=True).encode()).hexdigest()
        m["size"] = sum(self.blobs[d].stat().st_size for d in [*m["files"].values(), *m["adapters"].values()])
        m["architecture"] = base_arch
        yield {"status": "writing manifest"}
        with self.lock: self.models[full_name(name)] = m
        yield {"status": "success"}

    def details(self, m: dict) -> dict:
        return {"parent_model": m.get("from") or "", "format": "gguf", "family": m["architecture"], "families": [m["architecture"]],
                "parameter_size": "", "quantization_level": ""}

    def modelfile(self, name: str, m: dict) -> str:
        lines = [f"# Modelfile generated by \"ollama show\"", f"# To build a new Modelfile based on this one, replace the FROM line with:", f"# FROM {name}", ""]
        lines += [f"FROM {self.blobs[d]}" for d in m["files"].values()]
        lines += [f"ADAPTER {self.blobs[d]}" for d in m["adapters"].values()]
        lines.append(f'TEMPLATE """{m["template"]}"""')
        if m["system"]: lines.append(f'SYSTEM """{m["system"]}"""')
        for k, v in m["parameters"].items():
            for x in (v if isinstance(v, list) else [v]): lines.append(f"PARAMETER {k} {json.dumps(x) if isinstance(x, str) else x}")
        lines += [f'LICENSE """{lic}"""' for lic in m["license"]]
        return "\n".join(lines) + "\n"

    def parameters_text(self, m: dict) -> str:
        out = []
        for k, v in m["parameters"].items():
            for x in (v if isinstance(v, list) else [v]): out.append(f"{k:<30} {json.dumps(x) if isinstance(x, str) else x}")
        return "\n".join(out)

    # --- generation ---------------------------------------------------------------------------
    def touch(self, name: str, keep_alive) -> str | None:
        "Record the model as loaded per keep_alive; returns 'unload' when keep_alive is 0."
        try: s = keep_alive_seconds(keep_alive)
        except ValueError as e: raise _Error(400, str(e))
        with self.lock:
            if s == 0: self.running.pop(full_name(name), None); return "unload"
            self.running[full_name(name)] = None if s is None else time.time() + s
        return None

    def ps(self) -> list[dict]:
        now, out = time.time(), []
        with self.lock:
            for name, exp in list(self.running.items()):
                if exp is not None and exp < now or name not in self.models: self.running.pop(name, None); continue
                m = self.models[name]
                out.append({"name": name, "model": name, "size": m["size"], "digest": m["digest"], "details": self.details(m),
                            "expires_at": dt.datetime.fromtimestamp(exp if exp is not None else 2**31 - 1, dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                            "size_vram": 0, "context_length": 2048})
        return out

    def _backend(self, m: dict):
        from locollm.backends.llamacpp import LlamaCppBackend
        digest = next(iter(m["files"].values()))
        if digest not in self._backends:
            self._backends[digest] = LlamaCppBackend(self.blobs[digest], n_ctx=2048)
            self._backends[digest].repeat_span = 0   # Ollama has no repetition guard: the client's must do the work
        b = self._backends[digest]
        for d in m["adapters"].values():
            if d not in b.adapters: b.add_adapter(d, self.blobs[d])
        return b

    def run(self, m: dict, prompt: str, options: dict, on_piece) -> dict:
        "Generate for `prompt` (already templated); calls on_piece(text) per token; returns the final statistics."
        if m["adapters"] and not self.lora_supported: raise _Error(500, "failed to initialize model: loras are not yet implemented")
        opts = {**{k: v for k, v in m["parameters"].items()}, **(options or {})}
        stop = opts.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        n = int(opts.get("num_predict", 128))
        n = 128 if n < 0 else n
        t0 = time.perf_counter_ns()
        if self.engine == "echo":
            words = [w + " " for w in ["echo:", *[w for w in prompt.split() if w.strip("#")][-8:]]][:n]
            text, count, reason = "", 0, "length" if len(words) >= n else "stop"
            for w in words:
                if any(s in text + w for s in stop if s): reason = "stop"; break
                text += w; count += 1; on_piece(w)
            p_tokens, done_reason = len(prompt.split()), reason
        else:
            import llama_cpp
            with self.lock:
                b = self._backend(m)
                # every request starts from an empty KV cache: llama-cpp-python's prefix reuse gives a different greedy
                # answer for a repeated prompt on Gemma 3 (sliding-window cache), and a fresh answer is what we compare
                b.llm.reset(); llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(b.llm.ctx), True)
                g = b.generate(prompt, {d: 1.0 for d in m["adapters"].values()}, raw=True, max_tokens=n, stop=stop,
                               temperature=float(opts.get("temperature", 0.8)), top_p=float(opts.get("top_p", 0.9)),
                               seed=int(opts.get("seed", 0)), on_token=on_piece)
            p_tokens, count, done_reason = g.prompt_tokens, g.completion_tokens, g.finish_reason or "stop"
        total = time.perf_counter_ns() - t0
        return {"done_reason": done_reason, "total_duration": total, "load_duration": 0, "prompt_eval_count": p_tokens,
                "prompt_eval_duration": total // 10, "eval_count": count, "eval_duration": total - total // 10}

    def chat_prompt(self, m: dict, messages: list[dict]) -> str:
        "Render a legacy (.Prompt/.Response) template over the conversation, as Ollama does for such templates."
        system, out, pending = m["system"], "", None
        for msg in messages:
            role, content = msg.get("role"), msg.get("content") or ""
            if role == "system": system = content
            elif role == "user":
                if pending is not None: out += render_template(m["template"], pending, system)
                pending = content
            elif role == "assistant":
                out += render_template(m["template"], pending or "", system) + content
                pending = None
        return out + render_template(m["template"], pending or "", system)

class _Error(Exception):
    def __init__(self, status: int, message: str): self.status, self.message = status, message

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOllama/" + VERSION

    def log_message(self, *a): pass

    def setup(self):
        super().setup()
        self.server.fake._conns.add(self.connection)

    def finish(self):
        try: super().finish()
        finally: self.server.fake._conns.discard(self.connection)

    @property
    def fake(self) -> FakeOllama: return self.server.fake

    # --- plumbing -------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)):
                data += self.rfile.read(size); self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self) -> dict:
        raw = self._body()
        try: body = json.loads(raw or b"{}")
        except json.JSONDecodeError as e: raise _Error(400, f"invalid character in request body: {e.msg}")
        self.fake.requests.append((self.command, self.path, body))
        return body

    def _send(self, status: int, obj=None, text: str | None = None):
        data = (json.dumps(obj) if text is None else text).encode() if (obj is not None or text is not None) else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8" if text is None else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(data)

    def _stream(self, parts):
        "Send an NDJSON stream with chunked transfer encoding; an error mid-stream becomes an {\"error\"} line."
        first = next(parts)  # errors before the first part are plain HTTP errors
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        def chunk(obj):
            line = (json.dumps(obj) + "\n").encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n"); self.wfile.flush()
        chunk(first)
        try:
            for p in parts: chunk(p)
        except _Error as e: chunk({"error": e.message})
        self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()

    def _dispatch(self, routes: dict):
        path = self.path.split("?")[0]
        for pat, fn in routes.items():
            if m := re.fullmatch(pat, path):
                try: return fn(*m.groups())
                except _Error as e: return self._send(e.status, {"error": e.message})
        self._send(404, text="404 page not found")

    def do_GET(self): self._dispatch({"/api/version": self.version, "/api/tags": self.tags, "/api/ps": self.ps, "/": lambda: self._send(200, text="Ollama is running")})
    def do_HEAD(self): self._dispatch({r"/api/blobs/(sha256[:-][0-9a-f]{64})": self.blob_head, "/": lambda: self._send(200, text="Ollama is running")})
    def do_POST(self): self._dispatch({r"/api/blobs/(sha256[:-][0-9a-f]{64})": self.blob_post, "/api/create": self.create, "/api/show": self.show,
                                       "/api/generate": self.generate, "/api/chat": self.chat})
    def do_DELETE(self): self._dispatch({"/api/delete": self.delete})

    # --- endpoints ----------------------------------------------------------------------------
    def version(self): self._send(200, {"version": VERSION})

    def tags(self):
        ms = [{"name": n, "model": n, "modified_at": m["modified_at"], "size": m["size"], "digest": m["digest"], "details": self.fake.details(m)}
              for n, m in sorted(self.fake.models.items())]
        self._send(200, {"models": ms})

    def ps(self): self._send(200, {"models": self.fake.ps()})

    def blob_head(self, digest):
        self._send(200 if digest.replace("-", ":", 1) in self.fake.blobs else 404)

    def blob_post(self, digest):
        digest = digest.replace("-", ":", 1)
        data = self._body()
        self.fake.requests.append(("POST", self.path, {"bytes": len(data)}))
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest: raise _Error(400, f"digest mismatch, expected \"{digest}\", got \"{got}\"")
        p = self.fake.blob_dir/digest.replace(":", "-")
        p.write_bytes(data)
        with self.fake.lock: self.fake.blobs[digest] = p
        self._send(201)

    def create(self):
        req = self._json_body()
        parts = self.fake.create(req)
        if req.get("stream", True) is False:
            for p in parts: pass
            return self._send(200, {"status": "success"})
        self._stream(parts)

    def _model_or_404(self, req: dict, pull_hint: bool = False) -> tuple[str, dict]:
        name = req.get("model") or req.get("name")
        if not name: raise _Error(400, "model is required")
        m = self.fake.model(name)
        if m is None: raise _Error(404, f"model \"{name}\" not found, try pulling it first" if pull_hint else f"model '{name}' not found")
        return name, m

    def show(self):
        name, m = self._model_or_404(self._json_body())
        self._send(200, {"license": "\n".join(m["license"]), "modelfile": self.fake.modelfile(full_name(name), m), "parameters": self.fake.parameters_text(m),
                         "template": m["template"], "system": m["system"], "details": self.fake.details(m),
                         "model_info": {"general.architecture": m["architecture"]}, "capabilities": ["completion"], "modified_at": m["modified_at"]})

    def delete(self):
        name, _ = self._model_or_404(self._json_body())
        with self.fake.lock: self.fake.models.pop(full_name(name)); self.fake.running.pop(full_name(name), None)
        self._send(200)

    def _answer(self, req: dict, prompt_of, wrap):
        "Shared by /api/generate and /api/chat: load/unload requests, then streamed or whole answers."
        name, m = self._model_or_404(req, pull_hint=True)
        prompt = prompt_of(m)
        unloaded = self.fake.touch(name, req.get("keep_alive"))
        base = lambda: {"model": name, "created_at": _now()}
        if prompt is None:  # empty prompt / no messages: load (or unload) the model only
            return self._send(200, base() | wrap("") | {"done": True, "done_reason": unloaded or "load"})
        if req.get("stream", True) is False:
            pieces = []
            stats = self.fake.run(m, prompt, req.get("options") or {}, pieces.append)
            return self._send(200, base() | wrap("".join(pieces)) | {"done": True} | stats)
        def parts():
            import queue
            q, box = queue.Queue(), {}
            def work():
                try: box["stats"] = self.fake.run(m, prompt, req.get("options") or {}, lambda t: q.put(t))
                except _Error as e: box["error"] = e
                finally: q.put(None)
            threading.Thread(target=work, daemon=True).start()
            first = q.get()
            if "error" in box and first is None: raise box["error"]
            pending = first
            while pending is not None:
                yield base() | wrap(pending) | {"done": False}
                pending = q.get()
            if "error" in box: raise box["error"]
            yield base() | wrap("") | {"done": True} | box["stats"]
        self._stream(parts())

    def generate(self):
        req = self._json_body()
        def prompt_of(m):
            if not req.get("prompt"): return None
            if req.get("raw"): return req["prompt"]
            return render_template(req.get("template") or m["template"], req["prompt"], req.get("system") or m["system"])
        self._answer(req, prompt_of, lambda text: {"response": text})

    def chat(self):
        req = self._json_body()
        prompt_of = lambda m: self.fake.chat_prompt(m, req["messages"]) if req.get("messages") else None
        self._answer(req, prompt_of, lambda text: {"message": {"role": "assistant", "content": text}})
