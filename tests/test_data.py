"""`loco data` and the one data lookup: the catalogue lists every source, `fetch` rebuilds files from a stand-in for the
Hugging Face Hub (tests/fake_hub.py) byte for byte and leaves nothing half-written when the Hub is unreachable, lacks
a file, serves other bytes or drops the connection; the committed fixtures are honest copies of the full data."""
import json, os, subprocess
from dataclasses import replace
from pathlib import Path
import pytest
from conftest import FIXTURE_DATA, LOCO, REPO, needs_full_data, run_loco
from fake_hub import FakeHub, parquet_bytes
from locollm.core import LocoError, sha256_file
from locollm.sources import CATALOGUE, SOURCES, Source, fetch, fetch_source, full_data

GSM8K, MBPP = CATALOGUE["gsm8k"], CATALOGUE["mbpp"]
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}

def _rows(path: Path) -> list[dict]: return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]

def hub_files(data: Path) -> dict[str, dict[str, bytes]]:
    """What the Hub holds for GSM8K and MBPP, made from data folder `data`: GSM8K's two parquet files, MBPP's four
    (one per split, by task id)."""
    gsm = {f.parquet[0]: parquet_bytes(_rows(data/f.path), f.columns) for f in GSM8K.files}
    f = MBPP.files[0]
    mbpp = {p: [r for r in _rows(data/f.path) if lo <= r["task_id"] <= hi]
            for p in f.parquet for lo, hi in [MBPP_SPLITS[Path(p).name.split("-")[0]]]}
    return {GSM8K.repo: gsm, MBPP.repo: {p: parquet_bytes(rows, f.columns) for p, rows in mbpp.items()}}

def as_fixture(d):
    "Source `d` with the fixtures' rows and sha256 recorded (the real record is the full files')."
    fixture = lambda f: replace(f, rows=len(_rows(FIXTURE_DATA/f.path)), sha256=sha256_file(FIXTURE_DATA/f.path))
    return replace(d, files=tuple(map(fixture, d.files)))

@pytest.fixture
def hub():
    "The fake Hub serving GSM8K and MBPP made of the fixture rows, at their recorded revisions."
    with FakeHub() as h:
        for d in (GSM8K, MBPP): h.add(d.repo, d.revision, hub_files(FIXTURE_DATA)[d.repo])
        yield h

def test_list_json_names_every_source_with_its_licence():
    r = run_loco("data", "list", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["name"] for s in out["sources"]] == list(CATALOGUE)
    for s in out["sources"]:
        assert s["licence"] and s["domain"] and s["rows"] > 0
        assert s["state"] in ("verified", "differs", "missing", "partial")
        assert (s["hub"] and s["revision"]) or s["selection"], s["name"]   # from the Hub, or says why not
        assert s["how"], s["name"]
        assert all(len(f["sha256"]) == 64 for f in s["files"])
    assert {s["name"] for s in out["sources"] if s["non_commercial"]} >= {"lima", "alpaca_demo", "t0_summarisation"}

def test_fetch_rebuilds_the_fixture_files_byte_for_byte(hub, tmp_path):
    for d in (GSM8K, MBPP):
        assert fetch_source(as_fixture(d), tmp_path, endpoint=hub.url).status == "fetched"
        for f in d.files: assert (tmp_path/f.path).read_bytes() == (FIXTURE_DATA/f.path).read_bytes(), f.path
    n = len(hub.requests)
    assert fetch_source(as_fixture(GSM8K), tmp_path, endpoint=hub.url).status == "present" and len(hub.requests) == n

@needs_full_data
def test_loco_data_fetch_rebuilds_the_full_files_byte_for_byte(tmp_path):
    "The real catalogue, revisions and sha256: what the Hub serves as parquet becomes the data folder's exact bytes."
    data = Path(os.environ["LOCOLLM_DATA"])
    with FakeHub() as h:
        for d in (GSM8K, MBPP): h.add(d.repo, d.revision, hub_files(data)[d.repo])
        r = run_loco("data", "fetch", "gsm8k", "mbpp", "--to", tmp_path/"data", env={"HF_ENDPOINT": h.url})
    assert r.returncode == 0, r.stderr
    for f in (*GSM8K.files, *MBPP.files):
        assert sha256_file(tmp_path/"data"/f.path) == sha256_file(data/f.path) == f.sha256

def test_fetch_all_skips_what_it_must_not_fetch_and_says_why(hub, tmp_path):
    catalogue = {d.name: d for d in (as_fixture(GSM8K), CATALOGUE["lima"], CATALOGUE["self_instruct_seed"])}
    res = {f.name: f for f in fetch(to=tmp_path, endpoint=hub.url, catalogue=catalogue)}
    assert res["gsm8k"].status == "fetched"
    assert (res["lima"].status, res["lima"].detail.split(" (")[0]) == ("skipped", "lima is not for commercial use")
    assert res["self_instruct_seed"].detail.startswith("self_instruct_seed cannot be fetched: no Hub dataset holds")
    assert sorted(p.name for p in tmp_path.rglob("*.jsonl")) == ["test.jsonl", "train.jsonl"]

def test_a_non_commercial_source_needs_its_licence_accepted(hub, tmp_path, monkeypatch):
    "No catalogued Hub source is non-commercial today: one made of GSM8K's first file, read by a non-commercial source."
    f = as_fixture(GSM8K).files[0]
    nc = replace(as_fixture(GSM8K), name="nc", files=(replace(f, path="nc/train.jsonl"),))
    monkeypatch.setitem(SOURCES, "nc", Source("nc", "math", "nc/train.jsonl", "CC BY-NC 4.0", True))
    with pytest.raises(LocoError, match=r"nc is not for commercial use \(CC BY-NC 4.0\) — .* --accept-licence nc"):
        fetch(["nc"], tmp_path, endpoint=hub.url, catalogue={"nc": nc})
    assert not hub.requests
    assert fetch(["nc"], tmp_path, ["nc"], endpoint=hub.url, catalogue={"nc": nc})[0].status == "fetched"
    assert (tmp_path/"nc"/"train.jsonl").read_bytes() == (FIXTURE_DATA/f.path).read_bytes()

def _nothing_written(tmp_path):
    assert not any(p.is_file() for p in tmp_path.rglob("*")), sorted(tmp_path.rglob("*"))

def test_other_bytes_than_recorded_are_refused(hub, tmp_path):
    "The hub serves the fixture rows at the recorded revision, whose recorded sha256 is the full file's."
    with pytest.raises(LocoError, match=r"gsm8k/train.jsonl rebuilt from openai/gsm8k@cc7b047b6e5b has sha256 .*, not "
                                        r"the recorded 17f347dc51.* — nothing was written"):
        fetch_source(GSM8K, tmp_path, endpoint=hub.url)
    _nothing_written(tmp_path)

@pytest.mark.parametrize("change, error", [
    (dict(repo="openai/gsm9k"), "RepositoryNotFoundError"),
    (dict(revision="0" * 40), "RevisionNotFoundError"),
    (dict(files=(replace(GSM8K.files[0], parquet=("main/nope.parquet",)),)), "EntryNotFoundError"),
])
def test_what_the_hub_does_not_have_is_one_line(hub, tmp_path, change, error):
    with pytest.raises(LocoError, match=f"the Hub has no .* \\(\\w*{error}\\) — check the source's recorded repo"):
        fetch_source(replace(as_fixture(GSM8K), **change), tmp_path, endpoint=hub.url)
    _nothing_written(tmp_path)

def test_a_dropped_connection_leaves_the_old_files(hub, tmp_path):
    "The second file of GSM8K breaks off half-way: neither file is written, the one already there is kept."
    (tmp_path/"gsm8k").mkdir()
    (tmp_path/"gsm8k"/"train.jsonl").write_text("old\n")
    hub.interrupt(GSM8K.files[1].parquet[0])
    with pytest.raises(LocoError, match="downloading main/test-00000-of-00001.parquet of openai/gsm8k@cc7b047b6e5b "
                                        "failed .* — fetch again: nothing was written"):
        fetch_source(as_fixture(GSM8K), tmp_path, endpoint=hub.url)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["train.jsonl"]
    assert (tmp_path/"gsm8k"/"train.jsonl").read_text() == "old\n"

def test_offline_is_one_line_and_writes_nothing(hub, tmp_path):
    r = run_loco("data", "fetch", "gsm8k", "--to", tmp_path, env={"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and r.stderr.startswith("loco: error: cannot reach the Hugging Face Hub"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not hub.requests
    _nothing_written(tmp_path)

def test_no_data_anywhere_names_loco_data_fetch(tmp_path):
    "A project with no data beside it, no cache and no LOCOLLM_DATA: every command that needs data says what to do."
    env = {k: v for k, v in os.environ.items() if k != "LOCOLLM_DATA"} | {"XDG_CACHE_HOME": str(tmp_path/"cache")}
    (tmp_path/"me"/"project").mkdir(parents=True)
    (tmp_path/"me"/"project"/"registry.yaml").write_text((REPO/"registry.yaml").read_text())
    r = subprocess.run([LOCO, "data", "path"], capture_output=True, text=True, env=env, cwd=tmp_path/"me"/"project")
    assert r.returncode == 1
    assert r.stderr.strip() == (f"loco: error: no data folder: LOCOLLM_DATA is not set and there is no "
                                f"{tmp_path}/cache/locollm/data or {tmp_path}/me/shared/data — run `loco data fetch` "
                                "(or set LOCOLLM_DATA to a data folder)")

def test_fixtures_are_lines_of_the_full_files_and_the_readme_counts_them():
    readme = (FIXTURE_DATA.parent/"README.md").read_text()
    for d in CATALOGUE.values():
        for f in d.files:
            lines = (FIXTURE_DATA/f.path).read_bytes().splitlines(keepends=True)
            assert f"| `{f.path}` | {len(lines)} |" in readme, f.path
    assert not full_data(FIXTURE_DATA)

@needs_full_data
def test_fixture_lines_are_copied_in_order_from_the_full_files():
    data = Path(os.environ["LOCOLLM_DATA"])
    for d in CATALOGUE.values():
        for f in d.files:
            full = iter((data/f.path).read_bytes().splitlines(keepends=True))
            for line in (FIXTURE_DATA/f.path).read_bytes().splitlines(keepends=True):
                assert line in full, f"{f.path}: a fixture line is not a line of the full file (in order)"
