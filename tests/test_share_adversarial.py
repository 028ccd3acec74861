"""Issue 19 (items 2-5) acceptance: the adapter installer against someone who controls an archive, a card in
registry.yaml or a folder in the project. Each class is tried with several variants, on the real installer
(`locollm.share`) and the real `loco` CLI:

2. a planted recovery journal moves nothing;
3. uninstall removes only the adapter's own files, whatever its card names;
4. an installed adapter is a candidate, whatever its archive claims;
5. memory and disk are bounded before any part of an archive is read (PAX and GNU header bombs, zero bombs);
and `adapters pack` with a bad output path is one line, not a traceback.
"""
import gzip, json, os, subprocess, sys, tarfile
from pathlib import Path
import pytest
from ruamel.yaml import YAML
from conftest import REPO, run_loco
from locollm import share
from locollm.core import LocoError, sha256_file
from locollm.registry import Registry
from test_share import BASE, build, leftovers, loco, make_card, one_line_error, sha, snapshot
from test_share import cache, loras  # noqa: F401 (fixtures)

DEAD_PID = (1 << 22) + 1   # above the largest pid Linux hands out: the process of this work folder is gone
MIB = 1 << 20

def state(*roots: Path) -> dict:
    "Every file (by sha256), folder and link (by target) under `roots`: what an attack must leave as it was."
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = f"-> {os.readlink(p)}" if p.is_symlink() else sha256_file(p) if p.is_file() else "folder"
    return out

@pytest.fixture
def victim(tmp_path_factory) -> Path:
    "A folder outside the project with a file an attacker would like moved or deleted."
    d = tmp_path_factory.mktemp("victim")
    (d/"secret.txt").write_text("do not touch")
    return d

@pytest.fixture
def sources(project) -> Path:
    "The project with folders an attacker would name: nbs/ and locollm/ beside adapters/."
    for rel in ("nbs/00_core.ipynb", "locollm/core.py"):
        (project.parent/rel).parent.mkdir(parents=True, exist_ok=True); (project.parent/rel).write_text(rel)
    return project

def ident(p: Path) -> list[int]:
    st = os.lstat(p)
    return [st.st_dev, st.st_ino]

# ---------------------------------------------------------------- 2. planted recovery journals
# Each journal is written into `w` (the planted work folder) of the project root `r`; `v` is the victim folder. Most use
# the real identities (device, inode) of the folder and of what they move, as an attacker on this machine could.
def _journal(kind, name, work, renames, expect=None):
    renames = [dict(src=src, dst=dst, ident=i) for src, dst, i in renames]
    return dict(kind=kind, name=name, work=work, expect=expect, renames=renames)

def _trash(r: Path, w: Path, name: str, src: str, what: Path | None = None) -> dict:
    "An uninstall journal of adapter `name` that moves `src` (really `what`) into the work folder's trash."
    return _journal("uninstall", name, ident(w), [(src, f"{w.name}/trash/{src}", ident(what or r/src))])

def _old_format(r: Path, w: Path, v: Path) -> dict:
    "The issue's variant: the journal format before the fix, with ../ paths."
    rel = lambda p: os.path.relpath(p, r)
    return dict(name="math-a", expect=None, renames=[["adapters/math-a", rel(v/"stolen")],
                                                     [rel(v/"secret.txt"), "adapters/math-a/secret.txt"]])

def _absolute(r: Path, w: Path, v: Path) -> dict:
    secret = v/"secret.txt"
    return _journal("uninstall", "math-a", ident(w), [(str(secret), str(r/"stolen.txt"), ident(secret))])

def _into_the_sources(r: Path, w: Path, v: Path) -> dict:
    "The install layout, with the sources in the place of the adapter folder."
    return _journal("install", "math-a", ident(w), [("nbs", f"{w.name}/old", ident(r/"nbs")),
                                                   (f"{w.name}/adapter", "nbs", ident(w))], expect={})

def _copied(r: Path, w: Path, v: Path) -> dict:
    "A journal of the install layout written in another folder (the project root's identity, not the work folder's)."
    return _journal("install", "math-a", ident(r), [("adapters/math-a", f"{w.name}/old", ident(r/"adapters/math-a")),
                                                   (f"{w.name}/adapter", "adapters/math-a", [0, 0])], expect={})

def _through_a_link(r: Path, w: Path, v: Path) -> dict:
    (r/"adapters/evil").symlink_to(v)
    return _trash(r, w, "evil", "adapters/evil/secret.txt", v/"secret.txt")

NOT_OWN = "not its own transaction's"
PLANTED = {   # name: (write the journal, what the refusal says)
    "the issue's variant: old format, ../ paths": (_old_format, "not a valid journal"),
    "absolute paths": (_absolute, NOT_OWN),
    "the registry, inside the project": (lambda r, w, v: _trash(r, w, "math-a", "registry.yaml"), NOT_OWN),
    "another adapter's folder": (lambda r, w, v: _trash(r, w, "math-a", "adapters/math-b"), NOT_OWN),
    "dot-dot inside the layout": (lambda r, w, v: _trash(r, w, "math-a", "adapters/math-a/../../nbs", r/"nbs"),
                                  NOT_OWN),
    "the install layout, into the sources": (_into_the_sources, NOT_OWN),
    "copied from another folder": (_copied, "written in another folder"),
    "a path through a link": (_through_a_link, "is a link"),
    "not JSON": (lambda r, w, v: "{'renames': [", "not a valid journal"),
    "2 MiB of journal": (lambda r, w, v: json.dumps(dict(pad="x" * (2 * MIB))), "not a small regular file"),
    "the journal is a link": (lambda r, w, v: (w/"journal.json").symlink_to(v/"secret.txt"),
                              "not a small regular file"),
}

def _plant(root: Path, victim: Path, make) -> Path:
    work = root/f".loco-work-{DEAD_PID}-planted"; work.mkdir()
    body = make(root, work, victim)
    if body is not None: (work/"journal.json").write_text(body if isinstance(body, str) else json.dumps(body))
    return work

@pytest.mark.parametrize("case", PLANTED)
@pytest.mark.parametrize("command", ["install", "uninstall"])
def test_a_planted_journal_is_refused_and_moves_nothing(case, command, sources, cache, victim, loras, tmp_path_factory):
    make, expect = PLANTED[case]
    root = sources.parent
    work = _plant(root, victim, make)
    arc = build(tmp_path_factory.mktemp("arc")/"x.tar.gz", {"adapter.gguf": loras["good"]})
    before = state(root, victim)
    args = ("adapters", "install", arc) if command == "install" else ("adapters", "uninstall", "math-b")
    line = one_line_error(loco(*args, registry=sources, cache=cache), expect)
    assert work.name in line and "nothing was moved" in line and f"inspect {work}" in line
    assert state(root, victim) == before, "a planted journal moved or deleted something"

def test_a_planted_work_folder_that_is_a_link_is_refused(sources, cache, victim):
    "A `.loco-work-*` link to a folder elsewhere: recovery neither follows it nor deletes what it points at."
    (victim/"journal.json").write_text("{}")
    (sources.parent/f".loco-work-{DEAD_PID}-link").symlink_to(victim)
    before = state(sources.parent, victim)
    r = loco("adapters", "uninstall", "math-b", registry=sources, cache=cache)
    one_line_error(r, "is not a work folder of this project")
    assert state(sources.parent, victim) == before

def test_a_journal_that_knows_the_folder_still_moves_only_what_its_transaction_moved(sources, cache):
    """The right work-folder identity and layout, but not the identity of what stands at `adapters/math-a`: the undo
    moves back only the very folder its transaction moved, so the registered adapter stays."""
    root = sources.parent
    work = root/f".loco-work-{DEAD_PID}-forged"; work.mkdir()
    j = _journal("install", "math-a", ident(work), [("adapters/math-a", f"{work.name}/old", [0, 0]),
                                                    (f"{work.name}/adapter", "adapters/math-a", [0, 1])], expect={})
    (work/"journal.json").write_text(json.dumps(j))
    before = snapshot(sources)
    assert share.recover(sources) == [work.name]            # a journal of this folder: trusted, and carried out ...
    assert snapshot(sources) == before and not work.exists()  # ... without moving anything that was not its own
    Registry.load(sources, check_files=True)

def test_work_folders_are_ignored_by_git():
    r = subprocess.run(["git", "check-ignore", "-q", ".loco-work-123-abc/journal.json"], cwd=REPO)
    assert r.returncode == 0, ".loco-work-*/ is not in .gitignore"

# ---------------------------------------------------------------- 3. uninstall removes only the adapter's own files
def _set(project: Path, **change):
    "Give math-b's card the paths in `change` (`files.peft=…`, `training_config=…`, `sha256={…}`), as by hand."
    with Registry.edit(project) as reg:
        card = reg.adapter("math-b")
        for key, value in change.items():
            if key.startswith("files."): card.files = card.files.model_dump() | {key[6:]: value}
            else: setattr(card, key, value)

def _link(project, rel, target):
    (project.parent/rel).parent.mkdir(parents=True, exist_ok=True); (project.parent/rel).symlink_to(target)

def _manifest_naming(project, *names):
    "An installed-looking manifest in adapters/math-b/ that lists paths outside the folder."
    files = {n: dict(sha256="0" * 64, size=1) for n in names}
    man = dict(format="locollm-adapter", format_version=1, name="math-b", version="1.0.0", base_model=BASE, files=files)
    (project.parent/"adapters/math-b/manifest.json").write_text(json.dumps(man))

EVIL_CARDS = {
    # name: how to change math-b (its own file is adapters/math-b/math-b.gguf)
    "peft: adapters (the issue's variant)": lambda p, v: _set(p, **{"files.peft": "adapters"}),
    "peft: nbs": lambda p, v: _set(p, **{"files.peft": "nbs"}),
    "peft: locollm": lambda p, v: _set(p, **{"files.peft": "locollm"}),
    "peft: . (the project)": lambda p, v: _set(p, **{"files.peft": "."}),
    "peft: another adapter's folder": lambda p, v: _set(p, **{"files.peft": "adapters/math-a"}),
    "merged_gguf: registry.yaml": lambda p, v: _set(p, **{"files.merged_gguf": "registry.yaml"}),
    "training config and log in the sources": lambda p, v: _set(p, training_config="nbs/00_core.ipynb",
                                                                training_log="docs"),
    "sha256 of another adapter's file": lambda p, v: _set(p, sha256={"adapters/math-a/math-a.gguf": "0" * 64}),
    "a link in its folder to the sources": lambda p, v: (_link(p, "adapters/math-b/peft", "../../nbs"),
                                                         _set(p, **{"files.peft": "adapters/math-b/peft"})),
    "a link in its folder out of the project": lambda p, v: _link(p, "adapters/math-b/notes.md", v/"secret.txt"),
    "its manifest lists files outside": lambda p, v: _manifest_naming(p, "../../nbs/00_core.ipynb",
                                                                      "../math-a/math-a.gguf"),
    "dot-dot in the card": lambda p, v: _set(p, **{"files.peft": "adapters/math-b/../math-a"}),
    "absolute path in the card": lambda p, v: _set(p, **{"files.peft": str(v)}),
}

@pytest.mark.parametrize("case", EVIL_CARDS)
def test_uninstall_removes_only_the_adapters_own_files(case, sources, cache, victim):
    root = sources.parent
    try: EVIL_CARDS[case](sources, victim)
    except (LocoError, ValueError) as e: print(f"the registry refuses this card itself: {e}")
    others = lambda: {k: v for k, v in state(root, victim).items() if not k.startswith(str(root/"adapters/math-b"))
                      and not k.startswith(str(root/"registry.yaml"))}
    before = others()
    r = loco("adapters", "uninstall", "math-b", "--json", registry=sources, cache=cache)
    assert others() == before, "uninstall changed something outside adapters/math-b/"
    if r.returncode:    # refused by the registry's own path rules: one line, nothing removed
        one_line_error(r, "")
        assert (root/"adapters/math-b/math-b.gguf").exists()
        return
    out = json.loads(r.stdout)
    assert not (root/"adapters/math-b/math-b.gguf").exists()
    assert all(p.startswith("adapters/math-b") for p in out["removed"]), out
    reg = Registry.load(sources, check_files=True)               # the other adapters' files and hashes are all there
    assert [a.name for a in reg.adapters()] == ["math-a", "code-a"]

def test_uninstall_keeps_files_its_card_does_not_name(sources, cache):
    (sources.parent/"adapters/math-b/notes.txt").write_text("mine")
    r = loco("adapters", "uninstall", "math-b", registry=sources, cache=cache)
    assert r.returncode == 0, r.stderr
    assert "kept adapters/math-b" in r.stdout, r.stdout
    assert [p.name for p in (sources.parent/"adapters/math-b").iterdir()] == ["notes.txt"]

@pytest.mark.parametrize("which", ["adapters/math-b", "adapters"])
def test_uninstall_refuses_an_adapter_folder_that_is_a_link(which, sources, cache):
    root = sources.parent
    real = root/"elsewhere"
    os.replace(root/which, real); (root/which).symlink_to(os.path.relpath(real, (root/which).parent))
    before = state(root)
    one_line_error(loco("adapters", "uninstall", "math-b", registry=sources, cache=cache), "is a symbolic link")
    assert state(root) == before

# ---------------------------------------------------------------- 4. status and scores from outside are claims
INVENTED = dict(benchmark="gsm8k", metric="exact_match", value=0.99, ci_low=0.98, ci_high=1.0, n=1319, baseline=0.1,
                p_value=1e-12, date="2026-01-01", code_version="invented")
CLAIMS = {
    "accepted with invented scores (the issue's variant)": dict(status="accepted", scores=[INVENTED]),
    "accepted, no scores": dict(status="accepted"),
    "active and accepted": dict(status="accepted", active=True),
    "rejected": dict(status="rejected", scores=[INVENTED]),
    "retired": dict(status="retired"),
}

@pytest.mark.parametrize("case", CLAIMS)
def test_an_installed_adapter_is_a_candidate_whatever_its_archive_claims(case, project, cache, loras, tmp_path_factory):
    claims = CLAIMS[case]
    arc = build(tmp_path_factory.mktemp("arc")/"x.tar.gz", {"adapter.gguf": loras["good"]}, make_card(**claims))
    r = loco("adapters", "install", arc, "--json", registry=project, cache=cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["status"], out["active"]) == ("candidate", False)
    assert out["claimed"]["status"] == claims["status"]                    # reported, labelled as the author's claim
    assert [s["value"] for s in out["claimed"]["scores"]] == [s["value"] for s in claims.get("scores", [])]
    card = Registry.load(project, check_files=True).adapter("math-new")
    assert (card.status, card.active, card.scores) == ("candidate", False, [])
    shipped = YAML(typ="safe").load((project.parent/"adapters/math-new/adapter.yaml").read_text())
    assert shipped["status"] == claims["status"] and len(shipped.get("scores", [])) == len(claims.get("scores", []))
    one_line_error(run_loco("promote", "math-new", registry=project), "has not passed the acceptance gate")

def test_claims_are_not_trusted_from_a_folder_or_over_an_accepted_adapter(project, cache, loras, tmp_path_factory):
    "The same from an unpacked folder, and with --force over this project's own accepted math-a."
    d = tmp_path_factory.mktemp("src")
    card = make_card("math-a", status="accepted", scores=[INVENTED])
    with tarfile.open(build(d/"a.tar.gz", {"adapter.gguf": loras["good"]}, card)) as tar:
        tar.extractall(d/"folder", filter="data")
    assert Registry.load(project).adapter("math-a").status == "accepted"
    r = loco("adapters", "install", d/"folder", "--force", "--json", registry=project, cache=cache)
    assert r.returncode == 0 and json.loads(r.stdout)["kind"] == "folder", r.stderr
    card = Registry.load(project, check_files=True).adapter("math-a")
    assert (card.status, card.scores) == ("candidate", [])
    one_line_error(run_loco("promote", "math-a", registry=project), "has not passed the acceptance gate")

# ---------------------------------------------------------------- 5. memory: bounded before any header is read
def _pax_record(key: str, n: int) -> tuple[bytes, int]:
    "The start of the PAX record `<length> <key>=<n bytes>\\n` (the value follows) and the record's length."
    body = len(key) + n + 3
    length = body
    while length != body + len(str(length)): length = body + len(str(length))
    return f"{length} {key}=".encode(), length

def _write_filler(f, n: int, byte: bytes = b"a"):
    for i in range(0, n, 8 * MIB): f.write(byte * min(8 * MIB, n - i))

def header_bomb(path: Path, kind: bytes, n: int) -> Path:
    """A gzipped tar whose first header is an extended one of type `kind` (`x`, `g`: PAX; `L`, `K`: GNU long name)
    declaring `n` bytes of data, written out, then a small manifest entry."""
    hdr = tarfile.TarInfo("././@PaxHeader" if kind in (b"x", b"g") else "././@LongLink")
    with gzip.open(path, "wb", compresslevel=6) as f:
        if kind in (b"x", b"g"):
            head, length = _pax_record("comment", n)
            hdr.type, hdr.size = kind, length
            f.write(hdr.tobuf(tarfile.USTAR_FORMAT) + head); _write_filler(f, n); f.write(b"\n")
        else:
            hdr.type, hdr.size = kind, n + 1
            f.write(hdr.tobuf(tarfile.GNU_FORMAT)); _write_filler(f, n); f.write(b"\0")
        f.write(bytes(-hdr.size % 512))
        m = tarfile.TarInfo("manifest.json"); m.size = 2
        f.write(m.tobuf(tarfile.USTAR_FORMAT) + b"{}" + bytes(510) + bytes(1024))
    return path

def sparse_bomb(path: Path, blocks: int) -> Path:
    "A gzipped tar whose first entry is a GNU sparse file with `blocks` extension blocks of 21 entries each."
    h = bytearray(tarfile.TarInfo("peft/x.safetensors").tobuf(tarfile.GNU_FORMAT))
    h[156:157] = tarfile.GNUTYPE_SPARSE
    h[482] = 1                                                         # extension blocks follow
    h[148:156] = b" " * 8
    h[148:155] = b"%06o\0" % (256 + sum(h[:148]) + sum(h[156:]))
    ext = b"".join(b"%011o\0%011o\0" % (1, 1) for _ in range(21)) + b"\x01" + bytes(7)
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(bytes(h))
        for i in range(0, blocks, 16384): f.write(ext * min(16384, blocks - i))
        f.write(bytes(1024))
    return path

def pax_chain(path: Path, n: int) -> Path:
    "A gzipped tar that starts with `n` empty PAX headers in a row (tarfile follows them recursively)."
    hdr = tarfile.TarInfo("././@PaxHeader"); hdr.type, hdr.size = tarfile.XHDTYPE, 0
    with gzip.open(path, "wb") as f: f.write(hdr.tobuf(tarfile.USTAR_FORMAT) * n + bytes(1024))
    return path

PEAK = r"""
import resource, sys
import locollm.share as S
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try: S.unpack(sys.argv[1], sys.argv[2]); print("unpacked")
except S.LocoError as e: print("refused:", e)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""

def unpack_peak(arc: Path, dest: Path) -> tuple[str, int]:
    "What `unpack` said, and how much its peak RSS grew (KiB), in a fresh process."
    r = subprocess.run([sys.executable, "-c", PEAK, str(arc), str(dest)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    *said, grew = r.stdout.strip().splitlines()
    return "\n".join(said), int(grew)

HEADER_BOMBS = {   # name: (make it in a folder, what the refusal says)
    "a PAX header of 200 MiB (the issue's)": (lambda d: header_bomb(d/"b.tar.gz", b"x", 200 * MIB), "memory bomb"),
    "global PAX header of 200 MiB": (lambda d: header_bomb(d/"b.tar.gz", b"g", 200 * MIB), "memory bomb"),
    "GNU long name of 200 MiB": (lambda d: header_bomb(d/"b.tar.gz", b"L", 200 * MIB), "memory bomb"),
    "GNU long link of 200 MiB": (lambda d: header_bomb(d/"b.tar.gz", b"K", 200 * MIB), "memory bomb"),
    "GNU sparse file with 400,000 extension blocks": (lambda d: sparse_bomb(d/"b.tar.gz", 400_000), "is a sparse file"),
    "10,000 PAX headers in a row": (lambda d: pax_chain(d/"b.tar.gz", 10_000), "memory bomb"),
}

@pytest.mark.parametrize("case", HEADER_BOMBS)
def test_a_header_bomb_is_refused_with_bounded_memory(case, tmp_path):
    make, expect = HEADER_BOMBS[case]
    arc = make(tmp_path)
    assert arc.stat().st_size < 2 * MIB                       # a small download ...
    said, grew_kib = unpack_peak(arc, tmp_path/"out")
    assert said.startswith("refused:") and expect in said, said
    assert grew_kib < 32 * 1024, f"peak RSS grew by {grew_kib / 1024:.0f} MiB while refusing it"   # ... that costs none

CLI_PEAK = r"""
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss    # of the one child: `loco`
print(json.dumps(dict(rc=r.returncode, stderr=r.stderr, peak_kib=peak_kib)))
"""

def test_the_cli_refuses_a_pax_bomb_in_one_line_with_the_memory_of_a_small_archive(project, cache, tmp_path_factory):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCOLLM_")}, "LOCOLLM_REGISTRY": str(project),
           "LOCOLLM_CACHE": str(cache)}
    def peak(arc):
        cmd = [sys.executable, "-c", CLI_PEAK, str(Path(sys.executable).with_name("loco")), "adapters", "install", arc]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        return json.loads(r.stdout)
    d = tmp_path_factory.mktemp("arc")
    small = d/"empty.tar.gz"
    with tarfile.open(small, "w:gz"): pass
    bomb = header_bomb(d/"bomb.tar.gz", tarfile.XHDTYPE, 200 * MIB)
    base, got = peak(small), peak(bomb)
    assert (base["rc"], got["rc"]) == (1, 1)
    lines = got["stderr"].strip().splitlines()
    assert len(lines) == 1 and "memory bomb" in lines[0] and "Traceback" not in got["stderr"], got["stderr"]
    print(f"peak RSS of `loco adapters install`: {base['peak_kib'] / 1024:.0f} MiB refusing an empty archive, "
          f"{got['peak_kib'] / 1024:.0f} MiB refusing the PAX bomb ({bomb.stat().st_size:,} bytes)")
    assert got["peak_kib"] - base["peak_kib"] < 32 * 1024, (base, got)
    assert leftovers(project, cache) == []

# ---------------------------------------------------------------- 5. disk: nothing written the manifest does not list
def _manifest(files: dict[str, tuple[bytes | None, int]]) -> bytes:
    "manifest.json for `{name: (data or None, size)}` (the sha256 of None is made up)."
    entries = {n: dict(sha256=sha(b) if b is not None else "0" * 64, size=size) for n, (b, size) in files.items()}
    man = dict(format="locollm-adapter", format_version=1, name="math-new", version="1.0.0", base_model=BASE,
               files=entries)
    return json.dumps(man).encode()

def zero_tar(path: Path, entries: list[tuple[str, int, bytes]]) -> Path:
    """A gzipped tar of `(name, declared size, first bytes)` entries, the rest of each written out as zeros (a name
    that ends in `/` is a folder)."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        for name, size, head in entries:
            ti = tarfile.TarInfo(name.rstrip("/")); ti.size = size
            if name.endswith("/"): ti.type = tarfile.DIRTYPE
            f.write(ti.tobuf(tarfile.USTAR_FORMAT) + head[:size]); _write_filler(f, size - len(head[:size]), b"\0")
            f.write(bytes(-size % 512))
        f.write(bytes(1024))
    return path

def written(d: Path) -> int: return sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0

def _listing(listed: dict[str, tuple[bytes | None, int]], *entries) -> list:
    "A manifest entry that lists `listed`, then the `entries` of `zero_tar`."
    man = _manifest(listed)
    return [("manifest.json", len(man), man), *entries]

GGUF, PICKLE = b"GGUF" + bytes(60), b"\x80\x04\x95" + bytes(61)
ZERO_BOMBS = {   # name: (entries of the archive, what the refusal says)
    "an unlisted log of 256 MiB": (lambda: _listing({"adapter.gguf": (GGUF, 64)}, ("adapter.gguf", 64, GGUF),
                                                    ("training/log.txt", 256 * MIB, b"")), "decompression bomb"),
    "an unlisted weight of 256 MiB": (lambda: _listing({"adapter.gguf": (GGUF, 64)},
                                                       ("peft/w.safetensors", 256 * MIB, b"")), "not in its manifest"),
    "larger than the manifest says": (lambda: _listing({"adapter.gguf": (GGUF, 64)}, ("adapter.gguf", 256 * MIB, b"")),
                                      "the manifest says 64"),
    "a 200 MiB log the manifest lists": (lambda: _listing({"training/log.txt": (None, 200 * MIB)},
                                                          ("training/log.txt", 200 * MIB, b"")), "decompression bomb"),
    "a 1.5 GiB weight the manifest lists": (lambda: _listing({"adapter.gguf": (None, 3 << 29)},
                                                             ("adapter.gguf", 64, GGUF)), "decompression bomb"),
    "a 2 MiB card": (lambda: _listing({"adapter.yaml": (None, 2 * MIB)}, ("adapter.yaml", 2 * MIB, b"")),
                     "decompression bomb"),
    "a 2 MiB manifest": (lambda: [("manifest.json", 2 * MIB, b"")], "decompression bomb"),
    "a pickle of 128 MiB named safetensors": (lambda: _listing({"peft/w.safetensors": (None, 128 * MIB)},
                                                               ("peft/w.safetensors", 128 * MIB, PICKLE)), "pickle"),
    "1,500 folders": (lambda: _listing({}, *[(f"d{i}/", 0, b"") for i in range(1500)]), "more than 1,000 files"),
    "the manifest is not first": (lambda: [("adapter.gguf", 256 * MIB, b""), ("manifest.json", 2, b"{}")],
                                  "does not start with manifest.json"),
}

@pytest.mark.parametrize("case", ZERO_BOMBS)
def test_a_zero_bomb_is_refused_before_its_data_is_written(case, tmp_path):
    make, expect = ZERO_BOMBS[case]
    arc = zero_tar(tmp_path/"b.tar.gz", make())
    with pytest.raises(LocoError, match=expect.replace("(", r"\(")): share.unpack(arc, tmp_path/"out")
    assert written(tmp_path/"out") <= 2 * MIB, f"{written(tmp_path/'out'):,} bytes were written before it was refused"

def test_the_default_cap_fits_the_largest_research_adapter_and_no_more_than_twice_that():
    "Gemma 3 4B (the research base): rank 64 on every linear layer, as peft safetensors and GGUF, both f32."
    layers, d, q, kv, ffn, rank = 34, 2560, 8 * 256, 4 * 256, 10240, 64
    per_layer = (d + q) + 2 * (d + kv) + (q + d) + 3 * (d + ffn)       # q, k, v, o, gate, up, down: r × (in + out)
    largest = 2 * 4 * layers * per_layer * rank                        # two copies, 4 bytes a parameter
    assert largest <= share.limits()[0] <= 2 * largest, (largest, share.limits()[0])

def test_a_hub_file_larger_than_its_manifest_says_is_refused_before_it_is_copied(project, monkeypatch, cache, loras,
                                                                                   tmp_path_factory):
    import huggingface_hub
    d = tmp_path_factory.mktemp("hub")
    repo = d/"repo"
    with tarfile.open(build(d/"hf.tar.gz", {"adapter.gguf": loras["good"]})) as tar: tar.extractall(repo, filter="data")
    (repo/"adapter.gguf").write_bytes(loras["good"] + bytes(8 * MIB))    # the repo now serves more than it lists
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **kw: str(repo/filename))
    monkeypatch.setenv("LOCOLLM_CACHE", str(cache))
    before = snapshot(project)
    with pytest.raises(LocoError, match="'adapter.gguf' of hf:someone/math-new is .* but its manifest says"):
        share.install("hf:someone/math-new", project, progress=False)
    assert snapshot(project) == before and leftovers(project, cache) == []

# ---------------------------------------------------------------- pack: a bad path is one line; nothing outside ships
def _a_file(d: Path) -> Path:
    (d/"f").write_text("not a folder")
    return d/"f"

def _a_folder(d: Path) -> Path:
    (d/"idx").mkdir()
    return d/"idx"

def _not_text(d: Path) -> Path:
    (d/"index.yaml").write_bytes(os.urandom(4096))
    return d/"index.yaml"

PACK_OUT = {   # name: (option, make its value in a folder)
    "--out is a file (the issue's variant)": ("--out", _a_file),
    "--out is inside a file": ("--out", lambda d: _a_file(d)/"sub"),
    "--index is a folder": ("--index", _a_folder),
    "--index is inside a file": ("--index", lambda d: _a_file(d)/"index.yaml"),
    "--index is not text": ("--index", _not_text),
}

@pytest.mark.parametrize("case", PACK_OUT)
def test_pack_with_a_bad_output_path_is_one_line(case, project, cache, tmp_path):
    option, make = PACK_OUT[case]
    extra = ("--out", tmp_path/"dist") if option == "--index" else ()
    r = loco("adapters", "pack", "math-a", option, make(tmp_path), *extra, registry=project, cache=cache)
    one_line_error(r, " — ")
    if option == "--out": assert not list(tmp_path.rglob("*.tar.gz*"))

@pytest.mark.parametrize("how", ["a peft file that links out", "a peft folder that links out"])
def test_pack_never_ships_a_file_from_outside_the_project(how, project, cache, victim, tmp_path):
    (victim/"secret.safetensors").write_bytes(b"\x08" + bytes(7) + b"{}      ")
    peft = project.parent/"adapters/math-b/peft"
    if how == "a peft folder that links out": peft.symlink_to(victim)
    else: peft.mkdir(); (peft/"adapter_model.safetensors").symlink_to(victim/"secret.safetensors")
    try: _set(project, **{"files.peft": "adapters/math-b/peft"})
    except (LocoError, ValueError) as e: print(f"the registry refuses to name it: {e}")   # then no peft file ships
    r = loco("adapters", "pack", "math-b", "--out", tmp_path/"dist", "--json", registry=project, cache=cache)
    if r.returncode: one_line_error(r, "outside the project")
    secret = sha256_file(victim/"secret.safetensors")
    for arc in (tmp_path/"dist").glob("*") if (tmp_path/"dist").exists() else []:
        with tarfile.open(arc) as tar:
            shipped = [sha(tar.extractfile(m).read()) for m in tar if m.isfile()]
        assert secret not in shipped, "it shipped a file from outside the project"
