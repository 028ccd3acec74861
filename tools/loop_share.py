"""Share of base-model answers that end in a loop or at max_tokens, under the old and the new stop strings.

Run: `python tools/loop_share.py [N_PER_DOMAIN] [MAX_TOKENS]` (needs the data: `loco data fetch`).
Prints a markdown table."""
import os, platform, sys, time
from collections import Counter
from locollm.answers import repeats_itself
from locollm.backends.llamacpp import LlamaCppBackend
from locollm.registry import Registry
from locollm.gguf.model import base_model_path
from locollm.routing.data import build_routing_data, split_rows

OLD_STOP = ["### Instruction:", "\n\n\n"]   # the registry's stop strings before issue 20

def main(per_domain: int = 24, max_tokens: int = 128) -> None:
    reg = Registry.load()
    rows, picked, seen = split_rows(build_routing_data(200, seed=0), "test"), [], Counter()
    for r in rows:
        if seen[r["domain"]] < per_domain: picked.append(r); seen[r["domain"]] += 1
    bm = reg.data.base_model
    print(f"{len(picked)} test-split routing queries ({dict(seen)}), max_tokens={max_tokens}, greedy; "
          f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d')}\n")
    print("| stop strings | ended at max_tokens | loops (repeats_itself) | either | mean tokens |")
    print("|---|---|---|---|---|")
    b = LlamaCppBackend(base_model_path(reg), prompt_format=bm.prompt_format)  # one load; stops passed per call
    for label, stop in (("before " + repr(OLD_STOP), OLD_STOP), ("after " + repr(list(bm.stop)), list(bm.stop))):
        gens = [b.generate(r["query"], max_tokens=max_tokens, stop=stop) for r in picked]
        length = [g.finish_reason == "length" for g in gens]
        loop = [repeats_itself(g.text) for g in gens]
        n = len(gens)
        either = sum(a or c for a, c in zip(length, loop))
        print(f"| {label} | {sum(length)/n:.1%} | {sum(loop)/n:.1%} | {either/n:.1%} "
              f"| {sum(g.completion_tokens for g in gens)/n:.0f} |", flush=True)
    b.close()

if __name__ == "__main__": main(*map(int, sys.argv[1:]))
