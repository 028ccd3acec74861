"""What a full forward pass of the base model costs a router: llama.cpp's mean-pooled embedding of three queries (8,
19 and 70 tokens), best of 5 each, on all the machine's threads. The `hidden` router reads the token embeddings
instead (32_routing.classifiers explains why). Run: .venv/bin/python tools/embed_latency.py (from the repo root)."""
import os, time
import llama_cpp
from locollm.gguf.model import base_model_path
from locollm.registry import Registry

llm = llama_cpp.Llama(str(base_model_path(Registry.load("registry.yaml"))), n_ctx=512, n_threads=os.cpu_count(),
                      embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
for q in ["What is the capital of Peru?",
          "Write a Python function that returns the n-th prime number and explain how it works.",
          "Janet has 3 apples and buys 5 more. She gives half to Tom. " * 4]:
    n, ts = len(llm.tokenize(q.encode())), []
    for _ in range(5):
        t = time.perf_counter(); llm.embed(q); ts.append(time.perf_counter() - t)
    print(f"{n} tokens: best of 5 {min(ts) * 1000:.1f} ms ({min(ts) * 1000 / n:.1f} ms per token)")
print(f"load average {os.getloadavg()[0]:.2f} (the number is only meaningful on an idle machine)")
