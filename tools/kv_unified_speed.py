"""Why the batching engine uses one unified KV cache: tokens/s of 16 greedy answers (32 tokens each) one at a time,
then batched over 8 sequences with a KV stream per sequence (kv_unified=False) and with one unified cache.
Run: .venv/bin/python tools/kv_unified_speed.py (from the repo root; needs an idle machine to mean much)."""
import os, time
import llama_cpp as L
from locollm.registry import Registry
from locollm.backends.llamacpp import LlamaCppBackend
from locollm.backends.batching import BatchedBackend
from locollm.serve.load import LOAD_PROMPTS

solo = LlamaCppBackend.from_registry(Registry.load("registry.yaml"), load_adapters=False)
requests = [(q, None) for q in LOAD_PROMPTS * 2]
rate = lambda gens, s: sum(g.completion_tokens for g in gens) / s
t = time.perf_counter(); alone = [solo.generate(p, a, max_tokens=32) for p, a in requests]
print(f"one at a time: {rate(alone, time.perf_counter() - t):.1f} tokens/s (load {os.getloadavg()[0]:.2f})")
make_context = L.llama_init_from_model
for unified in (False, True):
    def init(model, params, unified=unified):
        params.kv_unified = unified
        return make_context(model, params)
    L.llama_init_from_model = init
    engine = BatchedBackend(solo, slots=8)
    t = time.perf_counter(); together = engine.generate_many(requests, max_tokens=32)
    print(f"batched, kv_unified={unified}: {rate(together, time.perf_counter() - t):.1f} tokens/s "
          f"(load {os.getloadavg()[0]:.2f})")
    engine.engine.close()
L.llama_init_from_model = make_context
