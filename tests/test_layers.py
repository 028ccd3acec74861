"The package's layers: imports point down, the CLI is a shell nothing imports, notebooks follow the modules."
import ast, json, re, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parent.parent
PKG = REPO/"locollm"
# Lowest first: a module may import from its own layer and the layers before it, never from a later one.
LAYERS = ["core", "sources", "registry", "answers", "sandbox", "leaderboard", "gguf", "backends", "doctor", "share",
          "routing", "swarm", "training", "evals", "serve", "research", "cli"]

def modules() -> list[str]:
    out = []
    for f in sorted(PKG.rglob("*.py")):
        if f.name == "_modidx.py": continue
        parts = f.relative_to(REPO).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out

def layer(mod: str) -> str:
    return mod.split(".")[1] if mod.count(".") else "core"

def imported(mod: str) -> set[str]:
    "Every locollm module that `mod` imports (relative or absolute, at any depth of the file)."
    f = PKG.parent/(mod.replace(".", "/") + ".py")
    if not f.exists(): f = PKG.parent/mod.replace(".", "/")/"__init__.py"
    pkg = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for n in ast.walk(ast.parse(f.read_text())):
        if isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level: base = ".".join(pkg.split(".")[: len(pkg.split(".")) - n.level + 1] + ([base] if base else []))
            if base.startswith("locollm"): out.add(base)
        elif isinstance(n, ast.Import): out |= {a.name for a in n.names if a.name.startswith("locollm")}
    return out

LIBRARY = [m for m in modules() if layer(m) != "cli" and m != "locollm"]

@pytest.mark.parametrize("mod", modules())
def test_imports_point_down(mod):
    mine = LAYERS.index(layer(mod))
    up = sorted(i for i in imported(mod) if i != "locollm" and LAYERS.index(layer(i)) > mine)
    assert not up, f"{mod} (layer {layer(mod)}) imports from a higher layer: {up}"

def test_no_library_module_loads_the_cli():
    "Importing every non-CLI module, in one fresh interpreter, loads neither typer nor anything of locollm.cli."
    code = ("import importlib, sys\n"
            f"for m in {LIBRARY!r}: importlib.import_module(m)\n"
            "bad = sorted(k for k in sys.modules if k == 'typer' or k.startswith('locollm.cli'))\n"
            "print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"library imports pulled in: {r.stdout.strip()}"

def test_cli_command_modules_do_not_import_the_cli_package():
    for mod in modules():
        if layer(mod) == "cli" and mod != "locollm.cli":
            assert "locollm.cli" not in imported(mod), f"{mod} imports locollm.cli (its own registrar)"

def _exported(nb: Path) -> str | None:
    for c in json.loads(nb.read_text())["cells"]:
        if m := re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(c["source"]), re.M):
            return "locollm." + m.group(1).removesuffix(".__init__")
    return None

def test_notebooks_follow_the_modules():
    "Each notebook is named after its module, and imports nothing a later-numbered notebook exports."
    nbs = sorted(p for p in (REPO/"nbs").glob("*.ipynb") if p.name != "index.ipynb")
    owner = {}
    for i, nb in enumerate(nbs):
        mod = _exported(nb)
        assert mod, f"{nb.name} has no default_exp"
        assert nb.stem.split("_", 1)[1] == mod.removeprefix("locollm."), f"{nb.name} exports {mod}"
        owner[mod] = i
    for i, nb in enumerate(nbs):
        src = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        for m in re.finditer(r"^\s*(?:from\s+(locollm[\w.]*)\s+import|import\s+(locollm[\w.]*))", src, re.M):
            used = m.group(1) or m.group(2)
            later = [k for k, j in owner.items() if j > i and used == k]
            assert not later, f"{nb.name} imports {used}, exported by a later notebook ({nbs[owner[later[0]]].name})"
