"""A small stand-in for the Hugging Face Hub's file API, for tests: what `huggingface_hub.hf_hub_download` asks of a
dataset repository, with the Hub's headers and its 404s.

It listens on 127.0.0.1 (a free port) in a background thread; point `huggingface_hub` at it with `HF_ENDPOINT` (or the
`endpoint` argument):

    with FakeHub() as hub:
        hub.add("openai/gsm8k", REVISION, {"main/train-00000-of-00001.parquet": parquet_bytes(rows, columns)})
        os.environ["HF_ENDPOINT"] = hub.url
        ...

Endpoint: HEAD and GET /datasets/{repo}/resolve/{revision}/{path}, answered with `X-Repo-Commit` (the commit the
revision names), `ETag` (the file's sha256, as the Hub gives for LFS files) and `Content-Length`. A revision is a commit
sha or a branch (`add(..., branch="main")`). Unknown repos, revisions and files get the Hub's 404s with their
`X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound). `interrupt(path)` makes every GET of that file send half
of it and close the connection. Every request is logged in `.requests` (method, path).
"""
from __future__ import annotations
import hashlib, io, json, re, socket, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def parquet_bytes(rows: list[dict], columns: list[str]) -> bytes:
    "A parquet file of `rows` with `columns` (what the Hub's dataset viewer converts datasets to)."
    import pyarrow as pa, pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows]), buf)
    return buf.getvalue()

class FakeHub:
    "An in-process fake of the Hub's file API; see the module docstring."
    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}   # repo -> commit -> path -> bytes
        self.branches: dict[tuple[str, str], str] = {}           # (repo, branch) -> commit
        self.interrupted: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self

    @property
    def url(self) -> str: return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, repo: str, commit: str, files: dict[str, bytes], branch: str | None = None) -> None:
        "Serve `files` as dataset `repo` at `commit` (and at `branch`, when given)."
        self.repos.setdefault(repo, {})[commit] = dict(files)
        if branch: self.branches[(repo, branch)] = commit

    def interrupt(self, path: str) -> None: self.interrupted.add(path)

    def start(self) -> "FakeHub":
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None: self._httpd.shutdown(); self._httpd.server_close()
    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()

_RESOLVE = re.compile(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass

    def _error(self, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(404)
        self.send_header("X-Error-Code", code); self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET": self.wfile.write(body)

    def _resolve(self) -> None:
        hub: FakeHub = self.server.hub
        hub.requests.append((self.command, self.path))
        m = _RESOLVE.match(self.path.split("?")[0])
        if not m: return self._error("EntryNotFound", f"no route {self.path}")
        repo, rev, path = m.groups()
        if repo not in hub.repos: return self._error("RepoNotFound", f"Repository Not Found for url: {self.path}")
        commit = hub.branches.get((repo, rev), rev)
        if commit not in hub.repos[repo]: return self._error("RevisionNotFound", f"Invalid rev id: {rev}")
        data = hub.repos[repo][commit].get(path)
        if data is None: return self._error("EntryNotFound", f"{path} does not exist on {rev}")
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if self.command == "HEAD": return
        if path in hub.interrupted:   # half the bytes, then the connection drops
            self.wfile.write(data[: len(data) // 2]); self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR); self.close_connection = True
            return
        self.wfile.write(data)

    do_HEAD = do_GET = _resolve
