"""Issue 11, item 3: the docs site builds offline (tools/build_docs.py, Sphinx + myst-nb, ADR-0002) and its pages
render in headless Chromium without console errors, failed requests, broken links or broken images.
Screenshots go to artifacts/docs/ (gitignored). Needs the Debian `chromium` package (`apt-get install -y chromium`)."""
import ast, base64, fcntl, functools, http.server, importlib.util, json, os, queue, re, shutil, struct, subprocess, sys, threading, time, zlib
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parent.parent
ART = REPO/"artifacts"/"docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

def _load_tool():
    spec = importlib.util.spec_from_file_location("build_docs", REPO/"tools"/"build_docs.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

bd = _load_tool()

STARTED = {}

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    STARTED["t"] = time.time() - 1
    r = subprocess.run([sys.executable, str(REPO/"tools"/"build_docs.py"), "--out", str(tmp/"site"), "--work", str(tmp/"work")],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "built" in r.stdout
    return tmp/"site"

# ------------------------------------------------------------------------------------------------ what the notebooks say
def _cells(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]

def _directives(src):
    return {m.group(1) for m in re.finditer(r"^\s*#\s*\|\s*([\w-]+)", src, re.M)}

def _api_notebooks():
    "The API notebooks as they were when the site was built (others may land in nbs/ while the tests run)."
    return sorted(p for p in (REPO/"nbs").glob("*.ipynb") if p.name != "index.ipynb" and p.stat().st_mtime < STARTED["t"])

def _html_text(page):
    "Visible text of a built page (tags and the search index out)."
    s = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page.read_text())
    return re.sub(r"<[^>]+>", "", s).replace("&quot;", '"').replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

def test_every_source_has_a_page(site):
    "Home, API (one page per notebook), guides, ADRs, leaderboard, benchmarks and the course section are all there."
    assert (site/"index.html").is_file()
    for nb in _api_notebooks(): assert (site/"nbs"/f"{nb.stem}.html").is_file(), nb
    for md in (REPO/"docs").rglob("*.md"):
        if md.parent.name == "adr" and not re.match(r"\d{4}-", md.name): continue   # the ADR template is no page
        assert (site/md.relative_to(REPO).with_suffix(".html")).is_file(), md
    assert (site/"docs"/"leaderboard.html").is_file() and (site/"benchmarks"/"RESULTS.html").is_file()
    assert (site/"course"/"index.html").is_file()
    for nb in (REPO/"course").glob("*.ipynb"): assert (site/"course"/f"{nb.stem}.html").is_file(), nb
    nav = (site/"index.html").read_text()
    for caption in ("Course", "Guides", "Leaderboard", "API reference", "Decisions"): assert caption in nav

def test_nbdev_directives_are_honoured(site):
    """`#| hide` cells are not shown; no `#|` line is shown; each public function/class of an `#| export` cell is
    documented (a Python-domain entry with its anchor) and the export cell's own source is not shown."""
    checked = 0
    for nb in _api_notebooks():
        cells = _cells(nb)
        m = next((re.search(r"^\s*#\s*\|\s*default_exp[ \t]+(\S+)", s, re.M) for t, s in cells if t == "code" and "default_exp" in s), None)
        text = _html_text(site/"nbs"/f"{nb.stem}.html")
        html = (site/"nbs"/f"{nb.stem}.html").read_text()
        assert "#|" not in text, nb
        shown = "\n".join(s for t, s in cells if not (t == "code" and _directives(s) & {"hide", "export", "exporti"}))
        for t, s in cells:
            if t != "code": continue
            d = _directives(s)
            if "hide" in d:
                for line in s.splitlines():
                    line = line.strip()
                    if len(line) > 25 and not line.startswith("#") and line not in shown:
                        assert line not in text, f"{nb.name}: hidden line shown: {line}"
            if "export" in d and m and not re.search(r"#[ \t]*\|[ \t]*export[ \t]+\S", s):
                tree = ast.parse(re.sub(r"^\s*#\s*\|.*$", "", s, flags=re.M))
                for node in tree.body:
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_") and not node.decorator_list:
                        assert f'id="locollm.{m.group(1)}.{node.name}"' in html, f"{nb.name}: {node.name} not documented"
                        if f"def {node.name}(" not in shown: assert f"def {node.name}(" not in text, f"{nb.name}: export source shown"
                        checked += 1
    assert checked > 20, checked    # the API really is documented, not vacuously

def test_no_broken_links_in_the_site(site):
    assert bd.check_site(site) == []

def test_the_link_checker_finds_breakage(tmp_path):
    "The checker can fail: a missing page, image, anchor and an off-site script are each reported."
    (tmp_path/"a").mkdir()
    (tmp_path/"index.html").write_text('<p id="top"><a href="a/b.html">b</a> <a href="#top">t</a> <a href="https://x.org">ext</a></p>')
    (tmp_path/"a"/"b.html").write_text('<img src="../img/missing.png"><a href="../index.html#nope">x</a><a href="../gone.html">g</a>'
                                       '<script src="https://cdn.example.org/x.js"></script>')
    problems = bd.check_site(tmp_path)
    assert len(problems) == 4, problems
    assert any("missing.png" in p for p in problems) and any("#nope" in p for p in problems) and any("gone.html" in p for p in problems)
    assert any("another host" in p for p in problems)

def _png(w=40, h=20, rgb=(46, 125, 91)):
    "A small solid PNG, made without image libraries."
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

def _nb(*cells):
    out = []
    for c in cells:
        if isinstance(c, str): c = ("markdown", c)
        kind, src, *outs = c
        cell = {"cell_type": kind, "metadata": {}, "source": src}
        if kind == "code": cell |= {"execution_count": None, "outputs": outs}
        out.append(cell)
    return json.dumps({"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})

CORE_EXPORT = """#| export
def greet(name:str, # who to greet
          loud:bool=False, # shout it
         )->str: # the greeting
    "Say hello to `name`."
    return f"hello {name}"

class Box:
    "A box with a `size`."
    def __init__(self, size:int=1): self.size = size
    def open(self): "Open the box."
"""

def _mini_repo(repo):
    "A tiny project exercising every rule of the docs build: directives, docments, @patch, links, images, the course."
    for d in ("nbs", "docs/adr", "docs/img", "course", "benchmarks"): (repo/d).mkdir(parents=True)
    shutil.copy(REPO/"settings.ini", repo)
    (repo/"registry.yaml").write_text("version: 2\n")
    (repo/"docs"/"img"/"diagram.png").write_bytes(_png())
    (repo/"nbs"/"index.ipynb").write_text(_nb("# Mini\n\n> A mini project.\n\nSee [the guide](docs/guide.md) and [the course](course/00_intro.ipynb)."))
    (repo/"nbs"/"00_core.ipynb").write_text(_nb(
        "# Core\n> The core module.", ("code", "#| default_exp core"), ("code", "#| export\nimport os"),
        ("code", "#| hide\nfrom fastcore.test import *\nSECRET_HIDDEN_LINE = 1"), ("code", CORE_EXPORT),
        ("code", "#| export\n@patch\ndef close(self:Box, force:bool=False):\n    \"Close the box.\"\n"),
        ("code", "#| exports\ndef shown_source(x):\n    \"Source shown too.\"\n    return x"),
        ("code", "#| exporti\ndef internal_helper(): pass"),
        ("code", "#| echo: false\nprint('only the output')", {"output_type": "stream", "name": "stdout", "text": "only the output\n"}),
        ("code", "greet('a')", {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/plain": "'hello a'"}}),
        ("code", "#| hide\nimport nbdev; nbdev.nbdev_export()")))
    png = base64.b64encode(_png(120, 60, (200, 80, 40))).decode()
    (repo/"course"/"00_intro.ipynb").write_text(_nb(
        "# Intro to the course\n\nA plot:", ("code", "plot()", {"output_type": "display_data", "metadata": {},
        "data": {"image/png": png, "text/plain": "<Figure>", "application/vnd.jupyter.widget-view+json": {"model_id": "x"}}}),
        ("code", "convert()", {"output_type": "display_data", "metadata": {}, "data": {
            "text/plain": "STALE_BAR_FRAME: 0%", "application/vnd.jupyter.widget-view+json": {"model_id": "y"}}})))
    (repo/"docs"/"guide.md").write_text("# Guide\n\n![diagram](img/diagram.png)\n\nThe [registry](../registry.yaml), "
                                       "the [core](../nbs/00_core.ipynb), plan for <YEAR>.\n")

@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mini")
    _mini_repo(tmp/"repo")
    return bd.build(tmp/"site", tmp/"work", repo=tmp/"repo")

def test_mini_project_shows_what_nbdev_means(mini):
    core = (mini/"nbs"/"00_core.html").read_text()
    text = _html_text(mini/"nbs"/"00_core.html")
    for anchor in ("greet", "Box", "Box.open", "Box.close", "shown_source"): assert f'id="locollm.core.{anchor}"' in core, anchor
    assert "who to greet" in text and "shout it" in text and "the greeting" in text      # nbdev docments
    assert "Say hello to" in text and "Close the box." in text
    assert "SECRET_HIDDEN_LINE" not in text and "fastcore.test" not in text and "nbdev_export" not in text   # #| hide
    assert "def greet(" not in text and "def shown_source(" in text                     # export hides, exports shows
    assert "internal_helper" not in text and "import os" not in text                     # exporti / export of imports
    assert "only the output" in text and "print(" not in text                            # echo: false
    assert "'hello a'" in text                                                           # stored outputs, not executed
    assert "#|" not in text
    assert "00_intro.html" in (mini/"course"/"index.html").read_text()                  # the course section lists it
    intro = (mini/"course"/"00_intro.html").read_text()
    assert re.search(r'<img [^>]*src="[^"]+\.png"', intro) and "widget-view" not in intro
    assert "STALE_BAR_FRAME" not in intro                                               # a widget's text-only frame
    guide = (mini/"docs"/"guide.html").read_text()
    assert "https://github.com/locollm/locollm/blob/main/registry.yaml" in guide and "../nbs/00_core.html" in guide
    assert "&lt;YEAR&gt;" in guide and re.search(r'<img [^>]*src="[^"]*diagram\.png"', guide)
    assert bd.check_site(mini) == []

def test_a_broken_source_link_fails_the_build(tmp_path):
    "A link in a guide to a file that does not exist stops the build and names the file and line."
    _mini_repo(tmp_path/"repo")
    (tmp_path/"repo"/"docs"/"plan.md").write_text("# Plan\n\nSee [the plan](plan-2026.md).\n")
    errors = bd.stage(tmp_path/"repo", tmp_path/"src")
    assert len(errors) == 1 and "docs/plan.md:3" in errors[0] and "plan-2026.md" in errors[0], errors
    with pytest.raises(bd.DocsError, match="plan-2026.md"): bd.build(tmp_path/"site", tmp_path/"work", repo=tmp_path/"repo")

# ---------------------------------------------------------------------------------------------------- headless Chromium
class Chromium:
    "Drives /usr/bin/chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4 out)."
    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
             "--no-default-browser-check", "--hide-scrollbars", "--window-size=1280,900", "--remote-debugging-pipe"]

    def __init__(self, exe, profile, log):
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()
        def fds():
            a, b = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3); os.dup2(b, 4)
        self.proc = subprocess.Popen([exe, *self.FLAGS, f"--user-data-dir={profile}", "about:blank"], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, preexec_fn=fds, close_fds=False)
        os.close(to_child_r); os.close(from_child_w)
        self._id, self._results, self.events = 0, {}, queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True); self._reader.start()

    def _read(self):
        buf = b""
        while chunk := os.read(self._r, 1 << 16):
            buf += chunk
            *msgs, buf = buf.split(b"\0")
            for m in msgs:
                msg = json.loads(m)
                if "id" in msg: self._results[msg["id"]] = msg
                else: self.events.put(msg)

    def send(self, method, params=None, session=None, timeout=30):
        self._id += 1; i = self._id
        msg = {"id": i, "method": method, "params": params or {}} | ({"sessionId": session} if session else {})
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while i not in self._results:
            if time.monotonic() > end or self.proc.poll() is not None: raise TimeoutError(f"no answer to {method}")
            time.sleep(0.01)
        r = self._results.pop(i)
        if "error" in r: raise RuntimeError(f"{method}: {r['error']}")
        return r["result"]

    def close(self):
        try: self.send("Browser.close", timeout=5)
        except Exception: pass
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self._w); os.close(self._r)

    def visit(self, url, shot):
        """Open `url` in a fresh tab, wait for load and a quiet network, save a screenshot to `shot`; return what went wrong
        (console errors, exceptions, failed or off-host requests, HTTP errors, broken images) and a few DOM facts."""
        tab = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.send("Target.attachToTarget", {"targetId": tab, "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"): self.send(m, session=s)
        self.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
        while not self.events.empty(): self.events.get_nowait()
        nav = self.send("Page.navigate", {"url": url}, session=s)
        problems = [f"navigation failed: {nav['errorText']}"] if nav.get("errorText") else []
        host = re.match(r"https?://[^/]+", url).group(0)
        inflight, loaded, quiet_since, end = set(), False, None, time.monotonic() + 30
        while time.monotonic() < end:
            try: e = self.events.get(timeout=0.05)
            except queue.Empty:
                if loaded and not inflight:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 0.5: break
                continue
            if e.get("sessionId") != s: continue
            quiet_since = None
            m, p = e["method"], e.get("params", {})
            if m == "Page.loadEventFired": loaded = True
            elif m == "Network.requestWillBeSent":
                inflight.add(p["requestId"])
                u = p["request"]["url"]
                if not (u.startswith(host) or u.startswith(("data:", "blob:", "about:"))): problems.append(f"request to another host: {u}")
            elif m == "Network.loadingFinished": inflight.discard(p["requestId"])
            elif m == "Network.loadingFailed":
                inflight.discard(p["requestId"]); problems.append(f"request failed: {p.get('errorText')} ({p.get('type')})")
            elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
                problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif m == "Runtime.exceptionThrown": problems.append(f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                problems.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error": problems.append(f"console: {p['entry']['text']} {p['entry'].get('url', '')}")
        else: problems.append("page did not finish loading in 30 s")
        js = """JSON.stringify({title: document.title, h1: (document.querySelector('article h1, h1')||{}).textContent || '',
                 broken_images: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
                 images: document.images.length, nav_links: document.querySelectorAll('.sidebar-tree a').length,
                 styled: getComputedStyle(document.body).fontFamily, entries: document.querySelectorAll('dl.py').length,
                 width: document.documentElement.scrollWidth, outputs: document.querySelectorAll('.cell_output').length,
                 output_images: document.querySelectorAll('.cell_output img').length})"""
        facts = json.loads(self.send("Runtime.evaluate", {"expression": js, "returnByValue": True}, session=s)["result"]["value"])
        problems += [f"image did not load: {u}" for u in facts["broken_images"]]
        png = self.send("Page.captureScreenshot", {"format": "png"}, session=s)["data"]
        shot.parent.mkdir(parents=True, exist_ok=True); shot.write_bytes(base64.b64decode(png))
        self.send("Target.closeTarget", {"targetId": tab})
        return problems, facts

class _Quiet(http.server.SimpleHTTPRequestHandler):
    errors = []
    def log_message(self, *a): pass
    def send_error(self, code, *a, **k):
        _Quiet.errors.append(f"{code} {self.path}"); super().send_error(code, *a, **k)

def _title(path):
    "The first heading of a markdown file or notebook: what the page's h1 must say."
    text = "\n".join(s for t, s in _cells(path) if t == "markdown") if path.suffix == ".ipynb" else path.read_text()
    return re.search(r"^#\s+(.+?)\s*$", text, re.M).group(1)

def _serve(root):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"

def _shown_figures():
    "The images RESULTS.md shows (markdown image links), as paths relative to benchmarks/."
    return re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", (REPO/"benchmarks"/"RESULTS.md").read_text())

def test_every_results_figure_is_shown_not_named():
    "Each committed result figure is an image in RESULTS.md (not a path to copy), and each image it shows exists."
    text, shown = (REPO/"benchmarks"/"RESULTS.md").read_text(), _shown_figures()
    assert set(re.findall(r"[\w./-]+\.png", text)) == set(shown)
    assert {p.name for p in (REPO/"benchmarks"/"results").glob("*.png")} <= {Path(p).name for p in shown}
    for p in shown: assert (REPO/"benchmarks"/p).is_file(), p

def _image_outputs(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {}))

def test_course_and_results_pages_show_outputs_and_figures_in_chromium(site, tmp_path):
    """Every course page shows its stored outputs and plots (loaded), with a real title; the Results page shows every
    figure RESULTS.md names, loaded."""
    assert CHROMIUM, "headless Chromium is needed: apt-get install -y chromium"
    srv, base = _serve(site)
    course = sorted((REPO/"course").glob("[0-9][0-9]_*.ipynb"))
    _Quiet.errors.clear()
    with open(tmp_path/"chromium.log", "wb") as log:
        b = Chromium(CHROMIUM, tmp_path/"profile", log)
        try:
            for nb in course:
                problems, facts = b.visit(f"{base}/course/{nb.stem}.html", ART/f"course-{nb.stem}.png")
                assert problems == [], (nb.name, problems)
                assert facts["outputs"] >= 3 and facts["output_images"] >= _image_outputs(nb), (nb.name, facts)
                assert facts["h1"].rstrip("#¶ ").strip() == _title(nb).strip("`") and "<" not in facts["title"], facts
            problems, facts = b.visit(f"{base}/benchmarks/RESULTS.html", ART/"results.png")
            assert problems == [] and facts["images"] >= len(_shown_figures()), (problems, facts)
        finally:
            b.close(); srv.shutdown()
    assert _Quiet.errors == [], _Quiet.errors

def test_pages_render_in_chromium(site, mini, tmp_path):
    "Home, an API page and the leaderboard (plus a page with a notebook image) load cleanly in headless Chromium."
    assert CHROMIUM, "headless Chromium is needed: apt-get install -y chromium"
    (srv, base), (msrv, mbase) = _serve(site), _serve(mini)
    pages = {"home": (f"{base}/index.html", REPO/"nbs"/"index.ipynb"),
             "api-registry": (f"{base}/nbs/01_registry.html", REPO/"nbs"/"01_registry.ipynb"),
             "leaderboard": (f"{base}/docs/leaderboard.html", REPO/"docs"/"leaderboard.md"),
             "image-check": (f"{mbase}/course/00_intro.html", None)}
    n_api = len(_api_notebooks())
    _Quiet.errors.clear()
    with open(tmp_path/"chromium.log", "wb") as log:
        b = Chromium(CHROMIUM, tmp_path/"profile", log)
        try:
            for name, (url, source) in pages.items():
                problems, facts = b.visit(url, ART/f"{name}.png")
                assert problems == [], f"{url}: {problems}"
                h1 = facts["h1"].rstrip("#¶ ").strip()
                assert facts["title"].startswith(h1[:10]) and facts["width"] <= 1280, facts   # titled; nothing overflows sideways
                assert (ART/f"{name}.png").stat().st_size > 10_000
                if source is None:
                    assert facts["images"] >= 1, facts                       # the stored plot is there, and it loaded
                    continue
                assert h1 == _title(source).strip("`"), (url, h1)
                assert facts["nav_links"] >= n_api + 3, facts               # the sidebar lists every API page, guides, ...
                if name == "api-registry": assert facts["entries"] >= 5, facts   # documented exports
        finally:
            b.close(); srv.shutdown(); msrv.shutdown()
    assert _Quiet.errors == [], _Quiet.errors
