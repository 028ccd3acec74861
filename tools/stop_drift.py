"""Did a change of decoding (stop strings, the repetition guard) move the base model's benchmark scores?

Run: `python tools/stop_drift.py REV` after re-running `loco eval` for the committed adapters. The base model's answers
are the same in every adapter's report, so per benchmark this pools every `benchmarks/results/*/items.jsonl` at git
revision REV (the old decoding) and those of the working tree that changed since (the reports run again), keeps the
items both have, and compares the new base-model scores with the old on the same items with the benchmark's paired
test. Prints a markdown table with the old score's 95% interval and whether the new score fell below it. Judge
verdicts (writing-judge) are left out: they are not scores of the base model's answers alone."""
import json, subprocess, sys
from pathlib import Path
from locollm.evals.benchmarks import get_benchmark
from locollm.evals.stats import paired_test

RESULTS = Path(__file__).resolve().parents[1]/"benchmarks"/"results"

def base_scores(lines: list[str]) -> dict[tuple[str, str], float]:
    "`{(benchmark, item id): base-model score on the benchmark's primary metric}` of items.jsonl lines."
    out = {}
    for line in filter(str.strip, lines):
        r = json.loads(line)
        bench = get_benchmark(r["benchmark"])
        if bench.kind == "preference": continue   # a judge's verdict, not a score of the base model's answer alone
        if (v := (r.get("base_metrics") or {}).get(bench.metric)) is not None: out[r["benchmark"], r["id"]] = v
    return out

def at_revision(rev: str) -> dict:
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "--full-name", rev, "--", str(RESULTS)],
                           capture_output=True, text=True, check=True, cwd=RESULTS).stdout.split()
    out = {}
    for f in (f for f in files if f.endswith("items.jsonl")):
        text = subprocess.run(["git", "show", f"{rev}:{f}"], capture_output=True, text=True, check=True,
                              cwd=RESULTS.parents[1]).stdout
        out |= base_scores(text.splitlines())
    return out

def now(rev: str) -> dict:
    "The same, from the items files of the working tree that changed since `rev` (the reports run again)."
    changed = subprocess.run(["git", "diff", "--name-only", rev, "--", str(RESULTS)], capture_output=True, text=True,
                             check=True, cwd=RESULTS).stdout.split()
    out = {}
    for f in sorted(f for f in changed if f.endswith("items.jsonl")):
        out |= base_scores((RESULTS.parents[1]/f).read_text(encoding="utf-8").splitlines())
    return out

def drift_table(old: dict, new: dict) -> list[str]:
    L = ["| benchmark | n (shared items) | base before (95% CI) | base now | difference | paired test | p | below the "
         "old CI |", "|---|---|---|---|---|---|---|---|"]
    for b in sorted({b for b, _ in old} & {b for b, _ in new}):
        ids = sorted(i for bb, i in old if bb == b and (b, i) in new)
        if not ids: continue
        r = paired_test([new[b, i] for i in ids], [old[b, i] for i in ids], get_benchmark(b).kind)
        below = r.adapter < r.base_ci[0] - 1e-12
        L.append(f"| {b} | {r.n} | {r.base:.3f} [{r.base_ci[0]:.3f}, {r.base_ci[1]:.3f}] | {r.adapter:.3f} | "
                 f"{r.diff:+.3f} | {r.test} | {r.p_value:.3g} | {'**yes**' if below else 'no'} |")
    return L

if __name__ == "__main__":
    if len(sys.argv) != 2: sys.exit("usage: python tools/stop_drift.py REV   (the git revision of the old decoding)")
    print("\n".join(drift_table(at_revision(sys.argv[1]), now(sys.argv[1]))))
