"""Issue 10 acceptance: `loco adapters pack / install / uninstall`, hardened.

Every install failure must be one line on stderr (exit 1, no traceback) and leave the project as it was:
adapters/ and registry.yaml hashed before and after, no work folder, no temp file, no download left in
the cache (except the `.part` of a cut-off download, which the next run resumes).
"""
import hashlib, http.server, io, json, os, re, signal, subprocess, sys, tarfile, threading, time
from pathlib import Path
import pytest
from ruamel.yaml import YAML
from conftest import REPO, run_loco
from locollm.core import sha256_file
from locollm.registry import Registry

LOCO_SHARE = [str(Path(sys.executable).with_name("loco"))]
BASE = "gemma3-270m-q4_k_m"

def loco(*args, registry, cache, env=None, timeout=600):
    e = {k: v for k, v in os.environ.items() if k not in ("LOCOLLM_INDEX", "LOCOLLM_MAX_ADAPTER_BYTES", "LOCOLLM_MAX_ADAPTER_FILES")}
    e |= {"LOCOLLM_REGISTRY": str(registry), "LOCOLLM_CACHE": str(cache), **(env or {})}
    return subprocess.run([*LOCO_SHARE, *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout)

def sha(b: bytes) -> str: return hashlib.sha256(b).hexdigest()

# ---------------------------------------------------------------- a local HTTP server with Range and failure modes
class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        mode, f = srv.modes.get(self.path, srv.mode), srv.root/self.path.lstrip("/")
        if mode in ("404", "500") or not f.is_file(): return self.send_error(int(mode) if mode in ("404", "500") else 404)
        data = f.read_bytes()
        m = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(m[1]) if m else 0
        if start >= len(data) and m:
            self.send_response(416); self.send_header("Content-Range", f"bytes */{len(data)}"); self.send_header("Content-Length", "0"); self.end_headers(); return
        body = data[start:]
        self.send_response(206 if m else 200)
        if m: self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body))); self.send_header("Accept-Ranges", "bytes"); self.end_headers()
        try:
            if mode == "truncate": self.wfile.write(body[:len(body) // 3]); self.wfile.flush(); self.close_connection = True
            elif mode == "slow":
                for i in range(0, len(body), 32768): self.wfile.write(body[i:i + 32768]); self.wfile.flush(); time.sleep(0.05)
            else: self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError): pass

@pytest.fixture
def server(tmp_path_factory):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.root, srv.mode, srv.modes, srv.log = tmp_path_factory.mktemp("www"), "ok", {}, []
    srv.url = f"http://127.0.0.1:{srv.server_port}"
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield srv
    srv.shutdown(); srv.server_close()

@pytest.fixture
def cache(tmp_path_factory): return tmp_path_factory.mktemp("cache")

@pytest.fixture
def work(tmp_path_factory): return tmp_path_factory.mktemp("work")

# ---------------------------------------------------------------- project state
def snapshot(project: Path) -> dict:
    root = project.parent
    ad = root/"adapters"
    return dict(registry=sha256_file(project),
                files={p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(ad.rglob("*")) if p.is_file()},
                dirs=sorted(p.relative_to(root).as_posix() for p in ad.rglob("*") if p.is_dir()))

def leftovers(project: Path, cache: Path) -> list[str]:
    root = project.parent
    return sorted(p.name for p in root.iterdir() if p.name not in ("adapters", "routers", "docs", "registry.yaml", "registry.yaml.lock")) + \
           sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())

def one_line_error(r, expect: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("loco: error: ") and " — " in lines[0], lines[0]
    assert expect in lines[0], lines[0]
    return lines[0]

# ---------------------------------------------------------------- archives, good and bad
@pytest.fixture(scope="module")
def loras(tmp_path_factory, base_info):
    "Bytes of a GGUF LoRA that fits the base model, and of one for a narrower model (dimension mismatch)."
    from locollm.gguf.lora import random_lora, target_shapes
    d, shapes = tmp_path_factory.mktemp("loras"), target_shapes(base_info.path)
    good = random_lora(d/"good.gguf", shapes, base_info.architecture, seed=7, std=0.05).read_bytes()
    wrong = random_lora(d/"wrong.gguf", {n: (512, o) for n, (i, o) in shapes.items()}, base_info.architecture, seed=8).read_bytes()
    return dict(good=good, wrong=wrong)

def make_card(name="math-new", **kw) -> dict:
    return dict(name=name, domain="math", version="1.0.0", base_model=BASE, licence="MIT", status="accepted", files={"gguf_lora": "adapter.gguf"}) | kw

def _yaml(obj) -> bytes:
    buf = io.StringIO(); YAML(typ="safe").dump(obj, buf); return buf.getvalue().encode()

def build(path: Path, files: dict, card: dict | None = None, raw=(), tamper=None, manifest_base=None) -> Path:
    """A tar.gz adapter archive: `files` plus a card and a manifest with correct hashes (so the archive is bad only in the
    way a test means), then the `raw` (TarInfo, bytes) entries, unlisted; `tamper` changes files after hashing."""
    files = dict(files)
    card = card or make_card()
    card.setdefault("sha256", {n: sha(b) for n, b in files.items()})
    files["adapter.yaml"] = _yaml(card)
    man = dict(format="locollm-adapter", format_version=1, name=card["name"], version=card["version"], base_model=manifest_base or card["base_model"],
               files={n: dict(sha256=sha(b), size=len(b)) for n, b in files.items()})
    if tamper: files = tamper(files)
    with tarfile.open(path, "w:gz") as tar:
        for n, b in [("manifest.json", json.dumps(man).encode()), *files.items()]:
            ti = tarfile.TarInfo(n); ti.size = len(b); tar.addfile(ti, io.BytesIO(b))
        for ti, b in raw: tar.addfile(ti, io.BytesIO(b) if b else None)
    return path

def entry(name, kind=tarfile.REGTYPE, linkname="", data=b""):
    ti = tarfile.TarInfo(name); ti.type, ti.linkname, ti.size = kind, linkname, len(data)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE): ti.devmajor, ti.devminor = 1, 3
    return ti, data

def declared_bomb(path: Path, files: dict) -> Path:
    "A small archive whose last header declares a 5 GiB file: refused from the header, before any of it is decompressed."
    huge = tarfile.TarInfo("training/log.txt"); huge.size = 5 << 30
    return build(path, files, raw=[(huge, None)])

def folder_with_link(c) -> Path:
    "An unpacked adapter folder whose listed peft/config.json is a symbolic link to a file outside it."
    d = c.tmp/"folder"
    with tarfile.open(build(c.tmp/"f.tar.gz", c.files | {"peft/config.json": b"{}"})) as tar: tar.extractall(d, filter="data")
    (d/"peft/config.json").unlink(); (d/"peft/config.json").symlink_to("/etc/hostname")
    return d

def flip(name):
    def f(files): b = bytearray(files[name]); b[-1] ^= 0xFF; return files | {name: bytes(b)}
    return f

# ---------------------------------------------------------------- happy paths
def _ask(project, adapter=None, q="What is 2 + 2?"):
    r = run_loco("ask", q, *(["--adapter", adapter] if adapter else []), "--max-tokens", "8", "--json", registry=project)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

def _route(project, q):
    r = run_loco("route", q, "--json", registry=project)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["adapter"]

def test_round_trip_pack_uninstall_install_ask(project, cache, work):
    before = _ask(project, "math-a")
    assert before["adapter"] == "math-a"
    r = loco("adapters", "pack", "math-a", "--out", work, "--json", registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    packed = json.loads(r.stdout)
    assert packed["files"] == ["adapter.gguf", "adapter.yaml", "manifest.json"]
    with tarfile.open(packed["archive"]) as tar: assert tar.getnames()[0] == "manifest.json"

    r = loco("adapters", "uninstall", "math-a", registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    assert not (project.parent/"adapters/math-a").exists() and "math-a" not in [a.name for a in Registry.load(project).data.adapters]

    r = loco("adapters", "install", packed["archive"], "--json", registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert (got["name"], got["status"], got["active"], got["kind"]) == ("math-a", "candidate", False, "archive")
    assert got["claimed"]["status"] == "accepted"                              # what its card said, kept as a claim
    assert run_loco("registry", "validate", project).returncode == 0           # every file and hash checks out
    after = _ask(project, "math-a")
    assert (after["adapter"], after["answer"]) == ("math-a", before["answer"])  # the same weights give the same answer
    # installed inactive and a candidate (its archive's "accepted" is only a claim); routing uses it once promoted
    q = "How many apples are left if I have 12 and eat 5?"
    assert _route(project, q) is None
    one_line_error(run_loco("promote", "math-a", registry=project), "has not passed the acceptance gate")
    assert run_loco("promote", "math-a", "--force", "--reason", "round-trip test", registry=project).returncode == 0
    assert _ask(project, q=q)["adapter"] == "math-a"
    assert leftovers(project, cache) == []

def test_install_by_index_name_over_http_and_local(project, server, cache):
    r = loco("adapters", "pack", "code-a", "--out", server.root, "--index", server.root/"index.yaml", "--url", server.url + "/", "--json",
             registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    idx = YAML(typ="safe").load((server.root/"index.yaml").read_text())["adapters"]
    assert [(e["name"], e["domain"], e["base_model"], e["url"]) for e in idx] == [("code-a", "code", BASE, f"{server.url}/code-a-1.0.0.tar.gz")]
    assert loco("adapters", "uninstall", "code-a", registry=project, cache=cache).returncode == 0
    # by name, with the index itself served over HTTP (LOCOLLM_INDEX)
    r = loco("adapters", "install", "code-a", "--json", registry=project, cache=cache, env={"LOCOLLM_INDEX": server.url + "/index.yaml"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "url" and ("/code-a-1.0.0.tar.gz", None) in server.log
    assert Registry.load(project, check_files=True).adapter("code-a").files.gguf_lora == "adapters/code-a/adapter.gguf"
    # the same again from a local index: refused without --force, replaced with it
    one_line_error(loco("adapters", "install", "code-a", "--index", server.root/"index.yaml", registry=project, cache=cache), "already installed")
    r = loco("adapters", "install", "code-a@1.0.0", "--index", server.root/"index.yaml", "--force", "--json", registry=project, cache=cache)
    assert r.returncode == 0 and json.loads(r.stdout)["replaced"] == "1.0.0", r.stderr
    assert leftovers(project, cache) == []

def test_install_by_url_and_from_folder(project, server, cache, loras):
    arc = build(server.root/"new.tar.gz", {"adapter.gguf": loras["good"]})
    r = loco("adapters", "install", f"{server.url}/new.tar.gz", "--sha256", sha256_file(arc), registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    assert "installed math-new 1.0.0" in r.stdout
    card = Registry.load(project, check_files=True).adapter("math-new")
    assert (card.status, card.active, card.base_model) == ("candidate", False, BASE)
    # an unpacked folder with the same layout (e.g. a cloned repo) — with an extra file the manifest does not list, which is ignored
    folder = server.root/"folder"; folder.mkdir()
    with tarfile.open(arc) as tar: tar.extractall(folder, filter="data")
    (folder/"README.md").write_text("not listed")
    assert loco("adapters", "uninstall", "math-new", registry=project, cache=cache).returncode == 0
    r = loco("adapters", "install", folder, "--json", registry=project, cache=cache)
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "folder", r.stderr
    assert not (project.parent/"adapters/math-new/README.md").exists()
    assert leftovers(project, cache) == []

def test_install_from_hugging_face_hub_faked(project, tmp_path_factory, monkeypatch, loras, cache):
    "hf:owner/repo downloads manifest.json, then every file it lists (hf_hub_download faked: no network here)."
    import huggingface_hub
    from locollm import share
    repo = tmp_path_factory.mktemp("hfrepo")
    with tarfile.open(build(repo.parent/"hf.tar.gz", {"adapter.gguf": loras["good"]}, make_card("math-hub"))) as tar: tar.extractall(repo, filter="data")
    calls = []
    def fake(repo_id, filename, revision=None, **kw):
        calls.append((repo_id, filename, revision))
        if repo_id != "someone/math-hub": raise huggingface_hub.errors.RepositoryNotFoundError("404 Client Error: Repository Not Found")
        return str(repo/filename)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    monkeypatch.setenv("LOCOLLM_CACHE", str(cache))
    before = snapshot(project)
    with pytest.raises(share.LocoError, match="could not download 'manifest.json' from hf:someone/nope"): share.install("hf:someone/nope", project, progress=False)
    assert snapshot(project) == before
    res = share.install("hf:someone/math-hub@v1", project, progress=False)
    assert (res["name"], res["kind"]) == ("math-hub", "hf")
    assert [c[1] for c in calls[1:]] == ["manifest.json", "manifest.json", "adapter.gguf", "adapter.yaml"] and calls[-1][2] == "v1"
    assert Registry.load(project, check_files=True).adapter("math-hub").files.gguf_lora == "adapters/math-hub/adapter.gguf"
    assert leftovers(project, cache) == []

def test_hugging_face_offline_is_one_line(project, cache):
    before = snapshot(project)
    line = one_line_error(loco("adapters", "install", "hf:someone/math-x", registry=project, cache=cache, env={"HF_HUB_OFFLINE": "1"}),
                          "could not download 'manifest.json' from hf:someone/math-x")
    assert "online" in line
    assert snapshot(project) == before and leftovers(project, cache) == []

# ---------------------------------------------------------------- failures: one line, nothing left behind
GIB = 1 << 30
CASES = {
    # name: (how to make the source, expected text, extra env)
    "wrong hash":        (lambda c: c.index("x.tar.gz", build(c.www/"x.tar.gz", c.files), sha256="0" * 64), "does not match the library index", {}),
    "wrong size":        (lambda c: c.index("x.tar.gz", build(c.www/"x.tar.gz", c.files), size=10), "the index says 10", {}),
    "wrong size (local)": (lambda c: c.index("x.tar.gz", build(c.tmp/"x.tar.gz", c.files), size=10, local=True), "but the library index says 10", {}),
    "404":               (lambda c: f"{c.url}/missing.tar.gz", "was not found (HTTP 404)", {}),
    "500":               (lambda c: (c.srv.modes.update({"/x.tar.gz": "500"}), build(c.www/"x.tar.gz", c.files), f"{c.url}/x.tar.gz")[-1], "failed (HTTP 500", {}),
    "no server":         (lambda c: "http://127.0.0.1:9/x.tar.gz", "could not reach", {}),
    "path traversal":    (lambda c: build(c.tmp/"x.tar.gz", c.files, raw=[entry("../../../evil-share.txt", data=b"x")]), "path traversal", {}),
    "absolute path":     (lambda c: build(c.tmp/"x.tar.gz", c.files, raw=[entry(f"{c.tmp}/evil-abs.txt", data=b"x")]), "is an absolute path", {}),
    "symlink":           (lambda c: build(c.tmp/"x.tar.gz", c.files, raw=[entry("peft/config.json", tarfile.SYMTYPE, "/etc/passwd")]), "is a symbolic link", {}),
    "hardlink":          (lambda c: build(c.tmp/"x.tar.gz", c.files, raw=[entry("peft/config.json", tarfile.LNKTYPE, "adapter.gguf")]), "is a hard link", {}),
    "device file":       (lambda c: build(c.tmp/"x.tar.gz", c.files, raw=[entry("dev.json", tarfile.CHRTYPE)]), "is a character device", {}),
    "bomb (bytes)":      (lambda c: build(c.tmp/"x.tar.gz", c.files | {"training/log.txt": bytes(64 << 20)}), "decompression bomb",
                          {"LOCOLLM_MAX_ADAPTER_BYTES": str(20 << 20)}),
    "bomb (declared)":   (lambda c: declared_bomb(c.tmp/"x.tar.gz", c.files), "decompression bomb", {}),
    "bomb (files)":      (lambda c: build(c.tmp/"x.tar.gz", c.files | {f"peft/f{i}.json": b"{}" for i in range(1100)}), "more than 1,000 files", {}),
    "link in a folder":  (lambda c: folder_with_link(c), "is (or goes through) a symbolic link", {}),
    "pickle file":       (lambda c: build(c.tmp/"x.tar.gz", c.files | {"peft/adapter_model.bin": b"\x80\x04\x95 pickle"}), "is a pickle file", {}),
    "pickle in disguise": (lambda c: build(c.tmp/"x.tar.gz", c.files | {"peft/adapter_model.safetensors": __import__("pickle").dumps({"w": 1})}), "pickle", {}),
    "tampered file":     (lambda c: build(c.tmp/"x.tar.gz", c.files, tamper=flip("adapter.gguf")), "does not match the manifest", {}),
    "unlisted file":     (lambda c: build(c.tmp/"x.tar.gz", c.files, raw=[entry("extra.json", data=b"{}")]), "not in its manifest", {}),
    "no manifest":       (lambda c: (lambda p: (tarfile.open(p, "w:gz").close(), p)[1])(c.tmp/"x.tar.gz"), "has no manifest.json", {}),
    "not an archive":    (lambda c: ((c.tmp/"x.tar.gz").write_bytes(os.urandom(5000)), c.tmp/"x.tar.gz")[1], "not a readable adapter archive", {}),
    "wrong base model":  (lambda c: build(c.tmp/"x.tar.gz", c.files, make_card(base_model="llama-3b")), "was trained on 'llama-3b'", {}),
    "unknown domain":    (lambda c: build(c.tmp/"x.tar.gz", c.files, make_card(domain="poetry")), "domain 'poetry', which this registry does not have", {}),
    "dimension mismatch": (lambda c: build(c.tmp/"x.tar.gz", {"adapter.gguf": c.loras["wrong"]}), "does not fit the base model", {}),
    "duplicate name":    (lambda c: build(c.tmp/"x.tar.gz", c.files, make_card("math-a")), "already installed (version 1.0.0)", {}),
    "not a source":      (lambda c: "no-such-adapter", "no library index is configured", {}),
}

class Ctx:
    def __init__(self, srv, tmp, loras):
        self.srv, self.www, self.url, self.tmp, self.loras = srv, srv.root, srv.url, tmp, loras
        self.files = {"adapter.gguf": loras["good"]}
        self.env = {}
    def index(self, file, arc, sha256=None, size=None, local=False):
        "Write an index with one entry for `arc` (served over HTTP, or a local file beside it) and point LOCOLLM_INDEX at it."
        e = dict(name="math-new", version="1.0.0", domain="math", base_model=BASE, url=file, sha256=sha256 or sha256_file(arc), size=size or arc.stat().st_size)
        (arc.parent/"index.yaml").write_bytes(_yaml({"version": 1, "adapters": [e]}))
        self.env = {"LOCOLLM_INDEX": str(arc.parent/"index.yaml") if local else f"{self.url}/index.yaml"}
        return "math-new"

@pytest.mark.parametrize("case", CASES)
def test_install_failure_is_one_line_and_leaves_nothing(case, project, server, cache, work, loras):
    make, expect, env = CASES[case]
    c = Ctx(server, work, loras)
    source = make(c)
    before = snapshot(project)
    one_line_error(loco("adapters", "install", source, registry=project, cache=cache, env=env | c.env), expect)
    assert snapshot(project) == before, "adapters/ or registry.yaml changed"
    assert leftovers(project, cache) == [], "a work folder, temp file or download was left behind"
    for p in (project.parent/"evil-share.txt", project.parent.parent/"evil-share.txt", work/"evil-abs.txt", work.parent/"evil-share.txt"): assert not p.exists()

def test_truncated_download_then_resume(project, server, cache, loras):
    arc = build(server.root/"x.tar.gz", {"adapter.gguf": loras["good"]})
    Ctx(server, server.root, loras).index("x.tar.gz", arc)
    env = {"LOCOLLM_INDEX": f"{server.url}/index.yaml"}
    before = snapshot(project)
    server.modes["/x.tar.gz"] = "truncate"
    one_line_error(loco("adapters", "install", "math-new", registry=project, cache=cache, env=env), "run the same command again: it resumes")
    assert snapshot(project) == before
    parts = list(cache.rglob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < arc.stat().st_size  # kept for the resume, and nothing else
    have = parts[0].stat().st_size
    server.modes["/x.tar.gz"], server.log[:] = "ok", []
    r = loco("adapters", "install", "math-new", registry=project, cache=cache, env=env)
    assert r.returncode == 0, r.stderr
    assert ("/x.tar.gz", f"bytes={have}-") in server.log, server.log          # it asked only for the rest
    assert Registry.load(project, check_files=True).adapter("math-new").version == "1.0.0"
    assert leftovers(project, cache) == []

def _kill_when(cmd, env, ready, timeout=60):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ready() and p.poll() is None and time.time() - t0 < timeout: time.sleep(0.005)
    assert p.poll() is None, "the install finished before it could be killed"
    p.send_signal(signal.SIGKILL); p.wait(30)
    return p

def test_killed_install_changes_nothing(project, server, cache, loras):
    arc = build(server.root/"x.tar.gz", {"adapter.gguf": loras["good"]})
    Ctx(server, server.root, loras).index("x.tar.gz", arc)
    env = {**os.environ, "LOCOLLM_REGISTRY": str(project), "LOCOLLM_CACHE": str(cache), "LOCOLLM_INDEX": f"{server.url}/index.yaml"}
    cmd = [*LOCO_SHARE, "adapters", "install", "math-new"]
    before = snapshot(project)
    # 1. killed mid-download
    server.modes["/x.tar.gz"] = "slow"
    _kill_when(cmd, env, lambda: any(p.stat().st_size > 0 for p in cache.rglob("*.part")))
    assert snapshot(project) == before and leftovers(project, cache)[0].endswith(".part")
    # 2. killed after the download, while unpacking / checking / load-checking in its work folder
    server.modes["/x.tar.gz"] = "ok"
    _kill_when(cmd, env, lambda: any((w/"adapter").exists() for w in project.parent.glob(".loco-work-*")))
    assert snapshot(project) == before
    # the next run cleans up after the dead one, and installs
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert Registry.load(project, check_files=True).adapter("math-new").active is False
    assert leftovers(project, cache) == []

def _die(project, cache, patch: str, call: str):
    "Run `call` in a child process that `os._exit`s where `patch` says (a simulated kill -9 at that exact point)."
    code = f"import os, locollm.registry as R, locollm.share as S\n{patch}\n{call}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "LOCOLLM_CACHE": str(cache)})
    assert r.returncode == 9, r.stderr

def test_killed_in_the_commit_window_is_recovered(project, cache, work, loras):
    "A kill between renaming the folders and writing the registry: the next command undoes (or keeps) the change."
    from locollm.share import recover
    arc = build(work/"x.tar.gz", {"adapter.gguf": loras["good"]}, make_card("math-a", version="2.0.0"))
    before = snapshot(project)
    die_at_registry_write = "R.atomic_write_text = lambda *a, **k: os._exit(9)"
    _die(project, cache, die_at_registry_write, f"S.install({str(arc)!r}, {str(project)!r}, force=True, progress=False)")
    assert snapshot(project) != before                      # folders renamed, registry not written: inconsistent ...
    assert recover(project) and snapshot(project) == before  # ... until the next command undoes it
    _die(project, cache, die_at_registry_write, f"S.uninstall('math-b', {str(project)!r})")
    assert not (project.parent/"adapters/math-b").exists()
    recover(project)
    assert snapshot(project) == before
    # killed after the registry was written, before cleaning up: the change is kept
    _die(project, cache, "S.shutil.rmtree = lambda *a, **k: os._exit(9)", f"S.install({str(arc)!r}, {str(project)!r}, force=True, progress=False)")
    recover(project)
    assert Registry.load(project, check_files=True).adapter("math-a").version == "2.0.0"
    assert leftovers(project, cache) == []

def test_uninstall_active_needs_force(project, cache):
    assert run_loco("promote", "math-a", registry=project).returncode == 0
    before = snapshot(project)
    one_line_error(loco("adapters", "uninstall", "math-a", registry=project, cache=cache), "is the active math adapter")
    one_line_error(loco("adapters", "uninstall", "nope", registry=project, cache=cache), "unknown adapter 'nope'")
    assert snapshot(project) == before
    r = loco("adapters", "uninstall", "math-a", "--force", "--json", registry=project, cache=cache)
    assert r.returncode == 0 and json.loads(r.stdout)["removed"] == ["adapters/math-a"], r.stderr
    reg = Registry.load(project, check_files=True)
    assert reg.active_adapter("math") is None and [a.name for a in reg.adapters()] == ["math-b", "code-a"]
    assert leftovers(project, cache) == []

def test_pack_refuses_a_changed_file_and_skips_pickles(project, cache, work):
    peft = project.parent/"adapters/math-b/peft"; peft.mkdir()
    (peft/"adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (peft/"adapter_model.bin").write_bytes(b"\x80\x04 pickle")
    with Registry.edit(project) as reg:
        c = reg.adapter("math-b"); c.files = c.files.model_copy(update={"peft": "adapters/math-b/peft"})
        c.sha256 = c.sha256 | {f"adapters/math-b/peft/{p.name}": sha256_file(p) for p in peft.iterdir()}
    r = loco("adapters", "pack", "math-b", "--out", work, "--json", registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["files"] == ["adapter.gguf", "adapter.yaml", "manifest.json", "peft/adapter_model.safetensors"]
    assert res["skipped"] == ["adapters/math-b/peft/adapter_model.bin"]
    (project.parent/"adapters/math-b/math-b.gguf").open("ab").write(b"tampered")
    one_line_error(loco("adapters", "pack", "math-b", "--out", work, registry=project, cache=cache), "changed since adapter 'math-b' was registered")
