"""How far batching moves llama.cpp's logits: the last-token logits of 4 prompts read together in one batch vs each
read alone, with and without a unified KV cache, and read one at a time in a 4-sequence context (the scheduling
alone). Run: .venv/bin/python tools/batch_logits.py (from the repo root)."""
import numpy as np, llama_cpp as L
from locollm.registry import Registry
from locollm.backends.llamacpp import LlamaCppBackend
reg = Registry.load("registry.yaml")
solo = LlamaCppBackend.from_registry(reg, load_adapters=False)
from locollm.serve.load import LOAD_PROMPTS
toks = [solo.llm.tokenize(solo.frame(q).encode(), special=True) for q in LOAD_PROMPTS[:4]]
def ctx(nseq, unified):
    cp = solo.llm.context_params; p = type(cp).from_buffer_copy(cp)
    p.n_ctx, p.n_seq_max, p.kv_unified = 2048 * nseq, nseq, unified
    return L.llama_init_from_model(solo.llm.model, p)
nv = solo.llm.n_vocab()
def run(c, groups):
    b = L.llama_batch_init(512, 0, 1); n = 0; rows = []
    for sid, t in groups:
        for j, x in enumerate(t):
            b.token[n], b.pos[n], b.n_seq_id[n], b.seq_id[n][0], b.logits[n] = x, j, 1, sid, j == len(t) - 1
            if j == len(t) - 1: rows.append(n)
            n += 1
    b.n_tokens = n
    assert L.llama_decode(c, b) == 0
    return [np.ctypeslib.as_array(L.llama_get_logits_ith(c, r), shape=(nv,)).copy() for r in rows]
alone = []
for t in toks:
    c = ctx(1, False); alone += run(c, [(0, t)]); L.llama_free(c)
for unified in (False, True):
    c = ctx(4, unified); together = run(c, list(enumerate(toks))); L.llama_free(c)
    print(f"together (kv_unified={unified}): max |logit difference| per prompt",
          [round(float(np.abs(a - b).max()), 3) for a, b in zip(alone, together)],
          "same top token:", [int(a.argmax()) == int(b.argmax()) for a, b in zip(alone, together)])
c = ctx(4, False); sep = [run(c, [(i, t)])[0] for i, t in enumerate(toks)]; L.llama_free(c)
print("4-sequence context, one prompt at a time:", [round(float(np.abs(a - b).max()), 3) for a, b in zip(alone, sep)])
