"""Share of answers that end in a loop or at max_tokens, without and with the repetition guard, for the base model
and each adapter, under the registry's stop strings.

Run: `python tools/loop_share.py [N_PER_DOMAIN] [MAX_TOKENS]` (needs the data: `loco data fetch`).
Each answer is generated once with the guard off; the guarded answer is that generation's pieces replayed through
the same check `generate` makes after each piece (`loop_cut`). Greedy decoding is deterministic and the guard only
stops early, so the replay is the guarded answer; the first prompts of each model are checked against a real
guarded generation. Prints a markdown table."""
import os, platform, sys, time
from collections import Counter
from locollm.answers import repeats_itself
from locollm.backends.llamacpp import LlamaCppBackend
from locollm.registry import Registry
from locollm.routing.data import build_routing_data, split_rows

CHECKED = 3   # prompts per model whose replay is compared with a real guarded generation

def guarded(b, pieces: list[str], adapters: dict) -> tuple[str, bool]:
    "The answer `generate` keeps from `pieces` with the guard on, and whether the guard cut it."
    out = ""
    for piece in pieces:
        out += piece
        if (cut := b.loop_cut(out, adapters)) is not None: return out[:cut].strip(), True
    return out.strip(), False

def measure(b, queries: list[str], name: str | None, max_tokens: int) -> dict:
    spans, adapters = (b.repeat_span, b.repeat_spans), ({name: 1.0} if name else {})
    off, on = [], []
    for i, q in enumerate(queries):
        pieces = []
        b.repeat_span, b.repeat_spans = 0, {}
        g = b.generate(q, name, max_tokens=max_tokens, on_token=pieces.append)
        b.repeat_span, b.repeat_spans = spans
        text, cut = guarded(b, pieces, adapters)
        if i < CHECKED:
            real = b.generate(q, name, max_tokens=max_tokens)
            assert (real.text, real.finish_reason == "repetition") == (text, cut), (q, real.text, text)
        off.append((g.finish_reason == "length", repeats_itself(g.text), g.completion_tokens))
        on.append((not cut and g.finish_reason == "length", cut, repeats_itself(text), len(b.tokenize(text))))
    n = len(queries)
    share = lambda rows, k: sum(r[k] for r in rows) / n
    return dict(off_length=share(off, 0), off_loop=share(off, 1), off_tokens=share(off, 2), on_length=share(on, 0),
                on_cut=share(on, 1), on_loop=share(on, 2), on_tokens=share(on, 3))

def main(per_domain: int = 20, max_tokens: int = 128) -> None:
    reg = Registry.load()
    rows, picked, seen = split_rows(build_routing_data(200, seed=0), "test"), [], Counter()
    for r in rows:
        if seen[r["domain"]] < per_domain: picked.append(r); seen[r["domain"]] += 1
    queries = [r["query"] for r in picked]
    print(f"{len(picked)} test-split routing queries ({dict(seen)}), max_tokens={max_tokens}, greedy, stop "
          f"{list(reg.data.base_model.stop)!r}, guard span {reg.data.base_model.repeat_span}; "
          f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d')}\n")
    print("| model | guard off: ended at max_tokens | guard off: loops | guard off: mean tokens "
          "| guard on: ended at max_tokens | guard on: cut at a loop | guard on: loops left | guard on: mean tokens |")
    print("|---|---|---|---|---|---|---|---|")
    b = LlamaCppBackend.from_registry(reg)
    for name in [None, *b.adapters]:
        m = measure(b, queries, name, max_tokens)
        print(f"| {name or 'base model'} | {m['off_length']:.1%} | {m['off_loop']:.1%} | {m['off_tokens']:.0f} "
              f"| {m['on_length']:.1%} | {m['on_cut']:.1%} | {m['on_loop']:.1%} | {m['on_tokens']:.0f} |", flush=True)
    b.close()

if __name__ == "__main__": main(*map(int, sys.argv[1:]))
