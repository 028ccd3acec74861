#!/usr/bin/env python
"""Store executed outputs in the committed notebooks, so the docs site (and a reader on the forge) shows what a run
prints and plots — what a student should expect to see.

    python tools/store_outputs.py nbs [NAME ...]     # run API notebooks as nbdev_test does and keep their outputs
    python tools/store_outputs.py course DIR         # copy the outputs of tools/run_course.py --full --out DIR

`nbs`: each API notebook runs in its own process with nbdev's test machinery (the same cells `nbdev_test` runs:
cells flagged `slow` or `eval: false` are skipped and keep no output); a notebook that raises keeps the outputs it
had, and the exit code is 1. `course`: every cell of an executed copy whose id and source equal the committed cell's
gives that cell its outputs (papermill's injected-parameters cell is dropped); a copy whose cells differ from the
committed notebook is refused (run the course again); `DIR/timings.json` becomes `course/timings.json`, which the
lessons and the docs site quote. Either way the notebooks are written cleaned (nbdev_clean: no execution counts, no
run metadata) and atomically.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from locollm.core import atomic_write_text

REPO = Path(__file__).resolve().parent.parent

def write_clean(path: Path, nb: dict):
    "Write notebook `nb` to `path` with its cells cleaned as nbdev_clean would, through a temporary file and a rename."
    from nbdev.clean import clean_nb
    meta = nb["metadata"]   # the notebook's own (language_info tells the docs how to highlight `!` shell lines)
    clean_nb(nb, allowed_cell_metadata_keys=["tags"])
    nb["metadata"] = meta
    atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

def execute_api_notebook(path: Path) -> str | None:
    "Run one API notebook like nbdev_test and store its outputs; the error text, or None."
    from execnb.shell import CaptureShell
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    os.environ["IN_TEST"] = "1"
    skip = set(get_config().get("tst_flags", "").split())
    nb = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    def no_eval(cell):
        if cell.cell_type != "code" or "nbdev_export" + "(" in cell.source: return True
        direc = getattr(cell, "directives_", {}) or {}
        return direc.get("eval:", [""])[0].lower() == "false" or bool(skip & direc.keys())
    shell = CaptureShell(path)
    cwd = os.getcwd(); os.chdir(path.parent)
    try: shell.run_all(nb, exc_stop=True, preproc=no_eval)
    except Exception: return shell.prettytb(fname=path)
    finally: os.chdir(cwd)
    outputs = {c.get("id"): c.get("outputs", []) for c in nb.cells if c.cell_type == "code"}
    raw = json.loads(path.read_text(encoding="utf-8"))
    for c in raw["cells"]:
        if c["cell_type"] == "code": c["outputs"] = [dict(o) for o in outputs.get(c.get("id"), [])]
    write_clean(path, json.loads(json.dumps(raw, default=dict)))
    return None

def store_api(names: list[str], workers: int) -> int:
    paths = [p for p in sorted((REPO/"nbs").glob("*.ipynb")) if p.name != "index.ipynb"
             and (not names or any(p.name.startswith(n) for n in names))]
    failed = []
    # one process per notebook: models a notebook loads are freed with it
    with ProcessPoolExecutor(max_workers=workers, max_tasks_per_child=1) as pool:
        for i, (p, err) in enumerate(zip(paths, pool.map(execute_api_notebook, paths)), 1):
            print(f"[{i}/{len(paths)}] {'✓' if err is None else '✗'} {p.name}", flush=True)
            if err: failed.append(p.name); print(err, file=sys.stderr)
    print(f"outputs stored in {len(paths) - len(failed)} of {len(paths)} API notebooks" +
          (f"; FAILED (outputs unchanged): {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0

def _code(cells: list[dict]) -> list[tuple[str, str]]:
    src = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    return [(c.get("id"), src(c)) for c in cells if c["cell_type"] == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]

def _amdahl_4_vs_2(work) -> dict:
    """Seconds of `work(threads)` with 1 and 2 threads, and the 4-thread time Amdahl's law predicts from them, as a
    ratio to the 2-thread time (a 4-core laptop's time ≈ 2-core time × ratio; imports and loads do not scale)."""
    t1, t2 = (min(work(n) for _ in range(2)) for n in (1, 2))
    serial = min(max(2 * t2 / t1 - 1, 0.0), 1.0)
    return {"seconds_1_thread": round(t1, 3), "seconds_2_threads": round(t2, 3), "serial_fraction": round(serial, 3),
            "ratio_4_to_2": round((serial + (1 - serial) / 4) / (serial + (1 - serial) / 2), 3)}

def thread_scaling() -> dict:
    """How llama.cpp decoding (the base model, 48 tokens from each of 3 prompts) and torch training (forward and
    backward of a LoRA-sized MLP of the base model's shape, batch 4 × 256 tokens) scale from 1 to 2 threads here."""
    import torch
    from locollm.backends.llamacpp import LlamaCppBackend
    from locollm.core import find_registry
    from locollm.gguf.model import base_model_path
    from locollm.registry import Registry
    model = base_model_path(Registry.load(find_registry()))
    prompts = ["The capital of France is", "def add(a, b):", "Once upon a time"]
    def decode(threads):
        b = LlamaCppBackend(model, n_threads=threads)
        t0 = time.perf_counter()
        for p in prompts: b.generate(p, max_tokens=48)
        dt = time.perf_counter() - t0; b.close(); return dt
    def train(threads):
        torch.set_num_threads(threads); torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(640, 2048), torch.nn.GELU(), torch.nn.Linear(2048, 640))
        x = torch.randn(4 * 256, 640)
        t0 = time.perf_counter()
        for _ in range(20): mlp(x).square().mean().backward()
        return time.perf_counter() - t0
    return {"llama.cpp": _amdahl_4_vs_2(decode), "torch": _amdahl_4_vs_2(train)}

TRAINING_LESSONS = ("03_",)   # lessons whose time is mostly torch training; the others are mostly llama.cpp
TIME_MARK = "**Time:**"

def time_line(name: str, record: dict) -> str:
    "The lesson's measured 2-core time and the 4-core estimate, as the paragraph its introduction shows."
    secs, m = record["seconds"][name], record["machine"]
    engine = "torch" if name.startswith(TRAINING_LESSONS) else "llama.cpp"
    ratio = record["thread_scaling"][engine]["ratio_4_to_2"]
    mins = lambda s: f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"
    return (f"{TIME_MARK} {mins(secs)} on {m['cpu_count']} cores, measured running the whole lesson with its defaults "
            f"and an empty answer cache ({m['cpu']}, {record['date']}; `course/timings.json`, written by "
            f"`tools/store_outputs.py`); about {mins(secs * ratio)} on a 4-core laptop, estimated from how {engine} "
            f"scaled from 1 to 2 threads on that machine (loading and imports do not scale, so expect a little more). "
            f"The outputs below are that run's.")

def set_time_line(nb: dict, line: str):
    "Put `line` into the notebook's first markdown cell, before its **Compute:** paragraph (replacing an older one)."
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    paras = [p for p in "".join(cell["source"]).split("\n\n") if not p.startswith(TIME_MARK)]
    at = next((i for i, p in enumerate(paras) if p.startswith("**Compute:**")), len(paras))
    cell["source"] = "\n\n".join(paras[:at] + [line] + paras[at:]).splitlines(True)

def store_course(executed: Path, repo: Path = REPO, scaling: dict | None = None) -> int:
    "Copy the outputs of a full course run in `executed` into `repo`/course; `scaling`: thread_scaling() unless given."
    timings = executed/"timings.json"
    if not timings.is_file():
        print(f"{executed}: no timings.json — run python tools/run_course.py --full --out {executed} first", file=sys.stderr)
        return 1
    t = json.loads(timings.read_text(encoding="utf-8"))
    if t.get("mode") != "full" or not all(r["ok"] for r in t["notebooks"]):
        print(f"{timings}: not a complete --full run; the lessons' outputs must come from the real lesson", file=sys.stderr)
        return 1
    record = {"machine": t["machine"], "date": t["date"], "load_average_1min": t["load_average"],
              "total_seconds": t["total_seconds"], "seconds": {r["notebook"]: r["seconds"] for r in t["notebooks"]},
              "thread_scaling": scaling or thread_scaling()}
    pairs = [(repo/"course"/r["notebook"], executed/r["notebook"]) for r in t["notebooks"]]
    pairs = [(path, json.loads(path.read_text(encoding="utf-8")), json.loads(copy.read_text(encoding="utf-8")))
             for path, copy in pairs]
    if stale := [path.name for path, nb, ran in pairs if _code(nb["cells"]) != _code(ran["cells"])]:
        print(f"these notebooks changed since {executed} was run; run the course again: {', '.join(stale)}", file=sys.stderr)
        return 1
    for path, nb, ran in pairs:
        outputs = {c.get("id"): c.get("outputs", []) for c in ran["cells"] if c["cell_type"] == "code"}
        for c in nb["cells"]:
            if c["cell_type"] == "code": c["outputs"] = outputs.get(c.get("id"), [])
        set_time_line(nb, time_line(path.name, record))
        write_clean(path, nb)
    atomic_write_text(repo/"course"/"timings.json", json.dumps(record, indent=2) + "\n")
    print(f"outputs of {len(t['notebooks'])} course notebooks stored; course/timings.json written")
    return 0

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a_nbs = sub.add_parser("nbs", help="execute API notebooks and keep their outputs")
    a_nbs.add_argument("names", nargs="*", help="only notebooks whose names start with these")
    a_nbs.add_argument("--workers", type=int, default=1, help="notebooks run at once")
    a_course = sub.add_parser("course", help="copy a full course run's outputs into course/")
    a_course.add_argument("executed", type=Path, help="the --out folder of tools/run_course.py --full")
    a = ap.parse_args(argv)
    return store_api(a.names, a.workers) if a.what == "nbs" else store_course(a.executed)

if __name__ == "__main__":
    sys.exit(main())
