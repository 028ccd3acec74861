"""Issue 4, the "merged 4-bit" path: a GGUF LoRA folded into the real 270M base and re-quantized to Q4_K_M
behaves like base + LoRA applied at run time (and unlike the base), and bad input leaves nothing behind."""
import numpy as np
import pytest
from locollm.core import LocoError
from locollm.backends.llamacpp import LlamaCppBackend
from locollm.gguf.lora import random_lora, target_shapes
from locollm.gguf.merge import gguf_layout, merge_lora, next_token_agreement, read_tensor

PROMPTS = ["Write one sentence about the sea.", "What is 12 times 7?", "Name three colours."]
FMT = "### Instruction:\n{prompt}\n\n### Response:\n"

@pytest.fixture(scope="module")
def merged(tmp_path_factory, base_info):
    d = tmp_path_factory.mktemp("merge")
    lora = random_lora(d/"a.gguf", target_shapes(base_info.path), "gemma3", seed=1, std=0.03)
    return lora, merge_lora(base_info.path, lora, d/"a.q4_k_m.gguf"), merge_lora(base_info.path, lora, d/"a.f32.gguf", quantize=None)

def test_only_adapted_weights_change(merged, base_info):
    lora, q4, _ = merged
    lb, lq = gguf_layout(base_info.path), gguf_layout(q4)
    assert [(t.name, t.ne, t.type) for t in lb.tensors] == [(t.name, t.ne, t.type) for t in lq.tensors]  # same Q4_K_M recipe
    raw = lambda p, ly, t: np.fromfile(p, np.uint8, t.nbytes, offset=ly.data_start + t.offset)
    changed = {tb.name for tb, tq in zip(lb.tensors, lq.tensors) if not np.array_equal(raw(base_info.path, lb, tb), raw(q4, lq, tq))}
    assert changed == set(target_shapes(base_info.path))  # exactly the 72 attention weights the LoRA adapts
    w, w0 = read_tensor(q4, "blk.0.attn_q.weight"), read_tensor(base_info.path, "blk.0.attn_q.weight")
    assert w.shape == (1024, 640) and 0 < np.abs(w - w0).mean() < np.abs(w0).mean()

def test_merged_model_answers_like_base_plus_adapter(merged, base_info):
    lora, q4, f32 = merged
    rt = LlamaCppBackend(base_info.path, prompt_format=FMT); rt.add_adapter("a", lora)
    mq, mf = LlamaCppBackend(q4, prompt_format=FMT), LlamaCppBackend(f32, prompt_format=FMT)
    try:
        got = {"f32": next_token_agreement(rt, "a", mf, None, PROMPTS), "q4": next_token_agreement(rt, "a", mq, None, PROMPTS),
               "base": next_token_agreement(rt, "a", rt, None, PROMPTS)}
        print(got)
        assert got["f32"]["kl"] < 0.1 * got["base"]["kl"]    # the merge itself is exact up to float rounding
        assert got["q4"]["kl"] < 0.25 * got["base"]["kl"]    # re-quantizing costs a little, far less than dropping the adapter
        assert got["q4"]["top1"] >= 0.75
    finally:
        for b in (rt, mq, mf): b.close()

def test_bad_adapters_leave_nothing(tmp_path, base_info):
    wrong = random_lora(tmp_path/"wrong.gguf", {n: (512, o) for n, (i, o) in target_shapes(base_info.path).items()}, "gemma3", seed=3)
    with pytest.raises(LocoError, match="does not fit the base model"): merge_lora(base_info.path, wrong, tmp_path/"out.gguf")
    (tmp_path/"junk.gguf").write_bytes(b"not a model at all")
    with pytest.raises(LocoError, match="not a GGUF file"): merge_lora(base_info.path, tmp_path/"junk.gguf", tmp_path/"out.gguf")
    with pytest.raises(LocoError, match="not a LoRA adapter"): merge_lora(base_info.path, base_info.path, tmp_path/"out.gguf")
    with pytest.raises(LocoError, match="unknown quantization"): merge_lora(base_info.path, wrong, tmp_path/"out.gguf", quantize="Q3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.gguf", "wrong.gguf"]  # no output, no temporary files
