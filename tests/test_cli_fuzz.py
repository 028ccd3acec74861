"""Issue 19 acceptance: every `loco` command and option, given a value of the wrong type, an empty, huge, control or
non-UTF-8 value, fails with exit code != 0 and one line on stderr that names the option — no traceback — and leaves
every file of the project as it was.

Commands and options come from the typer app itself (click's command tree), so a new command is fuzzed without
touching this file; the values are made from each option's type. Each call runs `loco`'s `main` in a process of its
own, in a scratch copy of the project: a child forked from this process, which imported `locollm.cli` once, so that
hundreds of calls take seconds, not the import time of each (`test_a_fork_answers_like_the_console_script` checks
that a forked call and the real console script give the same exit code and the same line)."""
import hashlib, os, signal, subprocess, sys, tempfile, time, traceback
from pathlib import Path
import pytest, typer
from conftest import LOCO, REPO
from locollm.cli import app, main
from locollm.registry import scratch_project

HUGE = "x" * 20_000
BAD = {   # what no option of this type accepts
    int: ["abc", "-1", "9" * 30, "2.5"],
    float: ["abc", "nan", "inf", "-1"],
    str: ["", "a\x1b[2Jb", b"caf\xe9", HUGE],
}
FREE_TEXT = {("ask", "question"), ("route", "query"), ("feedback", "query")}   # a long question is cut to fit: fine
# values for required parameters, so that the bad value is the only fault of a call
GOOD = {"question": "What is 2 + 2?", "query": "What is 2 + 2?", "adapter": "math-gsm8k", "name": "fuzz-new",
        "source": "math-gsm8k", "sources": "math-gsm8k", "config": "adapters/math-gsm8k/config.yaml",
        "reason": "fuzz", "semester": "2026-S1"}

def commands(cmd, path=()):
    "`(words, command)` of every leaf command under `cmd`."
    for name, sub in sorted(cmd.commands.items()):
        if getattr(sub, "commands", None): yield from commands(sub, (*path, name))
        else: yield (*path, name), sub

def _kind(p) -> type:
    if getattr(p, "is_flag", False): return bool
    t = p.bare_type().removeprefix("list[").removesuffix("]")   # typer names it: 'int', 'list[str]', 'Path', …
    return {"int": int, "float": float}.get(t, str)              # str, Path and the rest all arrive as text

def _required(cmd, skip) -> list:
    "Good values for the command's required parameters other than `skip`, as argv words."
    out = []
    for p in cmd.params:
        if p is skip or not p.required: continue
        out += [GOOD[p.name]] if p.param_type_name == "argument" else [p.opts[0], GOOD[p.name]]
    return out

def cases():
    "`(id, argv, names the error line may use for the parameter)` for every parameter and bad value."
    root = typer.main.get_command(app)   # its own options (--registry, --debug, …) go before a harmless command
    for words, cmd, after in [((), root, ("adapters", "list")), *((w, c, ()) for w, c in commands(root))]:
        for p in cmd.params:
            kind, names = _kind(p), {*p.opts, p.name, p.name.upper()}
            if kind is bool: values = [f"{p.opts[0]}=2"]   # a flag takes no value
            else: values = [v for v in BAD[kind] if not (v is HUGE and (" ".join(words), p.name) in FREE_TEXT)]
            for v in values:
                bad = [v] if kind is bool or p.param_type_name == "argument" else [p.opts[0], v]
                argv = [*words, *_required(cmd, p), *bad, *after]
                pos = len(words) + len(_required(cmd, p)) + len(bad)   # 1-based: where the bad value is
                yield f"{' '.join(words) or 'loco'} {p.name}={v!r:.20}", argv, names | {f"argument {pos}"}

CASES = list(cases())

def _env(project: Path) -> dict:
    return {"LOCOLLM_REGISTRY": str(project/"registry.yaml"), "LOCOLLM_FEEDBACK": str(project/"fb.sqlite"),
            "NO_COLOR": "1", "COLUMNS": "200"}

def _forked(project: Path, argv: list, timeout: float = 30) -> tuple[int | None, str]:
    "`(exit code, stderr)` of `loco argv` run by `main` in a forked child; the code is None if it ran past `timeout`."
    with tempfile.TemporaryFile() as err:
        if (pid := os.fork()) == 0:   # the child: become `loco argv` in the project, as the console script would
            code = 1
            try:
                os.chdir(project); os.environ.update(_env(project))
                os.dup2(os.open(os.devnull, os.O_RDWR), 0); os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                os.dup2(err.fileno(), 2)
                sys.stdin, sys.stdout = open(0, closefd=False), open(1, "w", closefd=False)
                sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)
                sys.argv = ["loco", *(os.fsdecode(a) for a in argv)]   # how Python decodes a command line
                try: main(); code = 0
                except SystemExit as e:
                    if isinstance(e.code, str): print(e.code, file=sys.stderr)
                    code = e.code if isinstance(e.code, int) else int(e.code is not None)
            except BaseException: traceback.print_exc()   # what the interpreter prints for an uncaught exception
            finally:
                sys.stderr.flush(); os._exit(code)
        deadline = time.monotonic() + timeout
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
                return None, ""
            time.sleep(0.002)
        err.seek(0)
        return os.waitstatus_to_exitcode(done[1]), err.read().decode("utf-8", "replace")

def _problem(rc: int | None, err: str, names: set) -> str | None:
    "What is wrong with how `loco` failed, or None."
    lines = [l for l in err.splitlines() if l.strip()]
    if rc is None: return "still running after 30 s: the bad value was not refused up front"
    if rc == 0: return "exit code 0"
    if "Traceback" in err: return "a traceback"
    if len(lines) != 1: return f"{len(lines)} lines on stderr"
    if not lines[0].startswith("loco: error: "): return "no 'loco: error:'"
    if not any(n in lines[0] for n in names): return "the line does not name the parameter"

def _snapshot(root: Path) -> dict:
    return {str(f.relative_to(root)): (f.stat().st_size, f.stat().st_mtime_ns, f.stat().st_ino)
            for f in sorted(root.rglob("*")) if f.is_file()}

def _hashes(root: Path) -> dict:
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*"))
            if f.is_file()}

@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return scratch_project(tmp_path_factory.mktemp("fuzz"), REPO/"registry.yaml").parent

def test_the_fuzz_covers_every_command():
    words = {" ".join(w) for w, _ in commands(typer.main.get_command(app))}
    assert {"ask", "chat", "route", "eval", "registry validate", "router bench", "export gguf",
            "adapters install"} <= words
    assert len(CASES) > 300, len(CASES)

def test_a_fork_answers_like_the_console_script(project):
    sample = [c for c in CASES if c[0].startswith(("loco registry", "ask max_tokens", "ask adapter", "promote reason"))]
    for name, argv, _ in sample[::2]:
        real = subprocess.run([LOCO, *argv], cwd=project, capture_output=True, env={**os.environ, **_env(project)},
                              timeout=120)
        assert _forked(project, argv) == (real.returncode, real.stderr.decode("utf-8", "replace")), name

def test_bad_values_fail_with_one_line_and_change_nothing(project):
    before, stats, failures = _hashes(project), _snapshot(project), []
    for name, argv, names in CASES:
        rc, err = _forked(project, argv)
        if why := _problem(rc, err, names): failures.append(f"{name}: {why}: {err.strip()[-200:]!r}")
        if (now := _snapshot(project)) != stats:
            failures.append(f"{name} changed files: {sorted(set(now) ^ set(stats)) or 'rewrote one'}")
            stats = now
    assert not failures, f"{len(failures)} of {len(CASES)} bad calls misbehaved:\n" + "\n".join(failures)
    assert _hashes(project) == before, "a file of the project changed"
