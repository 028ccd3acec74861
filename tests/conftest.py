"Shared fixtures: a throw-away LocoLLM project with real adapter files, and a `loco` runner."
import os, subprocess, sys
from pathlib import Path
import pytest
from locollm.core import LocoError, data_dir
from locollm.sources import full_data

REPO = Path(__file__).resolve().parent.parent
LOCO = str(Path(sys.executable).with_name("loco"))
FIXTURE_DATA = REPO/"tests"/"fixtures"/"data"

def _test_data() -> Path:
    "The data folder the lookup finds; on a fresh clone with none, the committed fixtures (a few dozen rows a source)."
    try: return data_dir(REPO).resolve()
    except LocoError: return FIXTURE_DATA

# Every test and every `loco` it runs reads this folder (a test's scratch project has no ../shared beside it).
os.environ["LOCOLLM_DATA"] = str(_test_data())
# For tests of real quality (router accuracy, trained adapters, counts of the full sets): they skip on the fixtures.
needs_full_data = pytest.mark.skipif(not full_data(), reason=f"needs the full data, not {os.environ['LOCOLLM_DATA']} "
                                     "(`loco data fetch`, or the ../shared/data this repository is developed with)")

def run_loco(*args, registry=None, env=None, timeout=600):
    "Run the real `loco` console script; returns CompletedProcess with text stdout/stderr."
    e = {**os.environ, **(env or {})}
    if registry: e["LOCOLLM_REGISTRY"] = str(registry)
    return subprocess.run([LOCO, *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout)

@pytest.fixture(scope="session")
def base_info():
    from locollm.registry import Registry
    from locollm.gguf.model import base_model_path, read_gguf
    return read_gguf(base_model_path(Registry.load(REPO/"registry.yaml")))

def make_project(root: Path, base_info) -> Path:
    """A copy of the committed registry (no committed adapters) with three adapters that have real (seeded random)
    GGUF LoRAs: math-a and math-b (accepted) in math, code-a (candidate) in code."""
    from locollm.core import sha256_file
    from locollm.gguf.lora import random_lora, target_shapes
    from locollm.registry import AdapterCard, Registry, scratch_project
    shapes = target_shapes(base_info.path)
    scratch_project(root, REPO/"registry.yaml", adapters=False)   # the committed registry, its router files and ADR
    with Registry.edit(root/"registry.yaml") as reg:
        for i, (name, domain, status) in enumerate([("math-a", "math", "accepted"), ("math-b", "math", "accepted"), ("code-a", "code", "candidate")]):
            rel = f"adapters/{name}/{name}.gguf"
            random_lora(root/rel, shapes, base_info.architecture, seed=i + 1, std=0.05)
            reg.data.adapters = [*reg.data.adapters, AdapterCard(name=name, domain=domain, base_model=reg.data.base_model.name, licence="MIT",
                                                                 status=status, files={"gguf_lora": rel}, sha256={rel: sha256_file(root/rel)})]
    return root/"registry.yaml"

@pytest.fixture
def project(tmp_path, base_info): return make_project(tmp_path, base_info)
