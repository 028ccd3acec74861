#!/usr/bin/env python
"""Run every course notebook top to bottom with papermill, as CI does, and report the wall time of each.

    python tools/run_course.py                      # all of course/*.ipynb with `-p ci True` (tiny sizes)
    python tools/run_course.py 02 05                # only the notebooks whose names start with 02 or 05
    python tools/run_course.py --full 00            # the real lesson: the notebook's own defaults
    python tools/run_course.py --full --set threads=1 02   # … with a parameter changed (any notebook that has it)

Each notebook runs with `course/` as its working folder (as when a student opens it in JupyterLab);
the executed copies go to `--out` (default `artifacts/course/`, gitignored), with `timings.json`.
The notebooks share one course workspace (the student's own project, where 03's adapter lives and
04–08 pick it up): `--out`/workspace, made afresh when the run starts with 00 (`--set workspace=…`
picks another, kept as it is). Its `course-trail.jsonl` says which adapter each notebook used.
Before running, the committed notebooks are checked: each must be clean (no execution counts; the outputs
it keeps are a full run's, stored by tools/store_outputs.py) and have a cell tagged `parameters` that defines
`ci`, so that `-p ci True` really shrinks it.
The exit code is 1 if any check fails or any notebook raises; the error of each failed notebook is
printed, and the run goes on with the next one so that one report lists every failure.
"""
from __future__ import annotations
import argparse, ast, json, os, re, shutil, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COURSE = REPO/"course"

def notebooks(prefixes: list[str]) -> list[Path]:
    "The course notebooks in order, or those whose names start with one of `prefixes`."
    nbs = sorted(COURSE.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in nbs if not prefixes or any(p.name.startswith(x) for x in prefixes)]

def check(path: Path) -> list[str]:
    "Problems with a committed course notebook: execution counts left in it, or no `parameters` cell defining `ci`."
    nb, problems = json.loads(path.read_text(encoding="utf-8")), []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if any(c.get("execution_count") for c in code):
        problems.append("has execution counts: commit it clean (nbdev_clean, or tools/store_outputs.py course DIR)")
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1: problems.append(f"needs exactly one cell tagged `parameters` (has {len(params)})")
    elif "ci" not in declared(path): problems.append("its `parameters` cell does not define `ci`")
    return problems

def parse_sets(items: list[str]) -> dict:
    "`NAME=VALUE` strings as parameters; a VALUE that reads as a Python literal (1, None, [1, 2]) is one."
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.isidentifier(): raise SystemExit(f"--set needs NAME=VALUE, got {item!r}")
        try: out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError): out[name] = value
    return out

def declared(path: Path) -> set[str]:
    "Names assigned in the notebook's `parameters` cell."
    nb = json.loads(path.read_text(encoding="utf-8"))
    src = "".join(next((c["source"] for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), []))
    return set(re.findall(r"^([A-Za-z_]\w*)\s*=", src, re.M))

def run(path: Path, out: Path, full: bool, timeout: int | None, extra: dict | None = None) -> tuple[float, str | None]:
    "Execute one notebook; `(seconds, error or None)`. `extra` parameters are passed only to notebooks that define them."
    import papermill as pm
    params = ({} if full else {"ci": True}) | {k: v for k, v in (extra or {}).items() if k in declared(path)}
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out/path.name), parameters=params, cwd=str(COURSE),
                            progress_bar=False, log_output=False, execution_timeout=timeout, kernel_name="python3")
        return time.perf_counter() - t0, None
    except Exception as e:  # PapermillExecutionError (a cell raised), a timeout, a dead kernel
        return time.perf_counter() - t0, f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("only", nargs="*", help="run only notebooks whose names start with these (e.g. 00 03)")
    ap.add_argument("--out", type=Path, default=REPO/"artifacts"/"course", help="folder for the executed notebooks")
    ap.add_argument("--full", action="store_true", help="run the real lesson (the notebooks' defaults), not the CI sizes")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="set a parameter in every notebook that has it (repeatable)")
    ap.add_argument("--timeout", type=int, default=None, help="seconds a single cell may run (default: 1200 for CI sizes, no limit with --full)")
    a = ap.parse_args(argv)
    extra = parse_sets(a.set)
    nbs = notebooks(a.only)
    if not nbs: print(f"no course notebooks match {a.only} in {COURSE}", file=sys.stderr); return 1
    bad = {p.name: probs for p in nbs if (probs := check(p))}
    for name, probs in bad.items():
        for pr in probs: print(f"course/{name}: {pr}", file=sys.stderr)
    if bad: return 1
    a.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if "workspace" not in extra:
        extra["workspace"] = str((a.out/"workspace").resolve())
        if nbs[0].name.startswith("00") and Path(extra["workspace"]).exists(): shutil.rmtree(extra["workspace"])
    results, total = [], time.perf_counter()
    for p in nbs:
        print(f"▶ {p.name} …", flush=True)
        secs, err = run(p, a.out, a.full, a.timeout or (None if a.full else 1200), extra)
        results.append({"notebook": p.name, "seconds": round(secs, 1), "ok": err is None, "error": err})
        print(f"{'✓' if err is None else '✗'} {p.name}  {secs:6.1f} s" + (f"\n    {err}" if err else ""), flush=True)
    total = time.perf_counter() - total
    from locollm.evals.reports import machine_info
    m = machine_info()
    summary = {"mode": "full" if a.full else "ci", "set": extra, "date": m["date"],
               "machine": {k: m[k] for k in ("cpu", "cpu_count", "ram_gib", "os", "python", "code_version")},
               "total_seconds": round(total, 1), "load_average": os.getloadavg()[0], "notebooks": results}
    (a.out/"timings.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [r["notebook"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)}/{len(results)} course notebooks ran in {total:.1f} s ({'full lesson' if a.full else 'ci = True'}); "
          f"executed copies in {a.out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
