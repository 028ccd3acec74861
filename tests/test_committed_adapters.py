"""Issue 5: the specialist adapters committed in `adapters/` — four domains plus more maths adapters — are complete,
honest about their data licences, identical to what the registry records, and answer through `loco ask`. Issue 21:
`make demo`'s question is answered by the maths specialist's program."""
import json, re
import pytest
from conftest import REPO, run_loco
from locollm.registry import Registry
from locollm.gguf.model import _gguf_header, base_model_path, gguf_tensor_shapes, read_gguf

EXPECTED = {"math-gsm8k": "math", "math-gsm8k-mlp": "math", "math-pot": "math", "math-pot-words": "math",
            "math-pot-mlp": "math", "code-mbpp": "code", "writing-v1": "writing", "summarise-v1": "summarisation"}
REG = Registry.load(REPO/"registry.yaml", check_files=True)   # every file exists and matches its recorded sha256
CARDS = [REG.adapter(n) for n in EXPECTED if n in {c.name for c in REG.data.adapters}]

def test_every_expected_adapter_is_registered():
    assert {c.name: c.domain for c in REG.data.adapters if c.name in EXPECTED} == EXPECTED

@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_card_files_and_licences(card):
    assert card.base_model == REG.data.base_model.name and card.files.peft and card.files.gguf_lora
    assert (REG.root/card.files.peft/"adapter_model.safetensors").is_file()
    assert card.data_licences, "the card names the licence of each training source"
    non_commercial = any(re.search(r"non-commercial|\bNC\b", l, re.I) for l in card.data_licences)
    assert bool(re.search(r"non-commercial", card.licence, re.I)) == non_commercial, (card.licence, card.data_licences)
    log = (REG.root/card.training_log).read_text(encoding="utf-8")
    assert "{{" not in log and "}}" not in log, "every placeholder of the training log is filled"
    for lic in card.data_licences: assert lic in log
    assert re.search(r"\| Wall time \| [\d.]+ min", log) and re.search(r"Final training loss \| \d", log)
    assert (REG.root/card.training_config).read_text(encoding="utf-8") == (REPO/"configs"/f"{card.name}.yaml").read_text(encoding="utf-8"), \
        "configs/ holds the config each committed adapter was trained with"

@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_gguf_lora_matches_its_peft_config_and_the_base(card):
    path, base_path = REG.root/card.files.gguf_lora, base_model_path(REG)
    info = read_gguf(path)
    assert info.kind == "adapter" and info.architecture == "gemma3"
    cfg = json.loads((REG.root/card.files.peft/"adapter_config.json").read_text())
    assert _gguf_header(path)[0]["adapter.lora.alpha"] == pytest.approx(cfg["lora_alpha"])
    base, shapes = gguf_tensor_shapes(base_path), gguf_tensor_shapes(path)
    assert len(shapes) == 2 * read_gguf(base_path).n_layers * len(cfg["target_modules"])
    for name, shape in shapes.items():
        target = name.rsplit(".lora_", 1)[0]
        assert target in base and cfg["r"] in shape and set(shape) - {cfg["r"]} <= set(base[target]), (name, shape, base.get(target))

@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_loco_ask_answers_with_the_adapter(card):
    r = run_loco("ask", "What is 12 times 7?", "--adapter", card.name, "--max-tokens", "8", "--json", registry=REPO/"registry.yaml", timeout=300)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["adapter"] == card.name and a["answer"].strip(), a

def test_make_demo_question_is_answered_by_the_maths_specialists_program():
    """The demo's question is routed to the active maths adapter, a tool adapter whose program runs in the sandbox and
    prints the right answer (6 × 7 − 2); a word problem that is in no data set gets a computed answer too."""
    demo = re.search(r"^QUESTION \?= (.+)$", (REPO/"Makefile").read_text(encoding="utf-8"), re.M)[1]
    maths = REG.active_adapter("math")
    assert maths is not None and maths.tool == "python" and maths.status == "accepted"
    for question, expected in ((demo, "40"), ("A box holds 5 pens. How many pens are in 3 boxes?", None)):
        r = run_loco("ask", question, "--max-tokens", "96", "--json", registry=REPO/"registry.yaml", timeout=300)
        assert r.returncode == 0, r.stderr
        a = json.loads(r.stdout)
        assert (a["adapter"], a["program"]["status"]) == (maths.name, "passed"), a
        assert re.fullmatch(r"-?\d+(\.\d+)?", a["answer"]) and a["answer"] == a["program"]["answer"], a
        if expected: assert a["answer"] == expected, a
