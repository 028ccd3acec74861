"""Issue 19 (code sandbox): what a program written to escape or to fake a pass can do to `run_sandboxed`. Every class
of hole — file calls relative to a directory descriptor, process creation below `subprocess` (`fork_exec`,
`os.system`, ctypes), processes that outlive the run, early exits that look like a pass, signals, reading or changing
the user's files, the network, fork/memory/disk bombs — with several variants each, on the real sandbox (bubblewrap).
Every attack is judged on the host: the victim file is unchanged, the server saw nothing, no process is left. The
same attacks run without the sandbox (`allow_unsandboxed=True`, the `--allow-unsandboxed-code` mode) are the controls:
they do change the host, which shows that each attack works and each check can fail. docs/security.md
("Model-generated code") cites these tests."""
import os, secrets, select, shutil, signal, socket, subprocess, tempfile, threading, time
from pathlib import Path
import pytest

from conftest import REPO, run_loco
from locollm.core import LocoError
from locollm.sandbox import run_sandboxed, sandbox_isolation

ROOT = os.geteuid() == 0
CODE_UID = 65534 if ROOT else os.getuid()   # the uid generated code runs as, sandboxed or not


def test_the_sandbox_is_bubblewrap():
    iso = sandbox_isolation()
    assert iso.sandboxed, f"no sandbox here ({iso.reason}): install bubblewrap (make setup does)"
    assert iso.as_nobody == ROOT


@pytest.fixture
def unsandboxed(monkeypatch):
    "`run_sandboxed` as on a machine without bubblewrap, opted in: what the controls use."
    def run(program, **kw):
        with monkeypatch.context() as m:
            m.setenv("LOCOLLM_BWRAP", "/nonexistent/bwrap")
            return run_sandboxed(program, allow_unsandboxed=True, **kw)
    return run


def _token() -> str: return secrets.token_hex(6)


# ---------------------------------------------------------------- victims: the user's files and how they stand
def _state(p: Path):
    "What an attack could change: the file's content, mode and mtime, and anything made beside it under its name."
    made = sorted(x.name for x in p.parent.glob(p.name + "*"))
    if not p.exists(): return None, made
    st = p.lstat()
    return (p.read_bytes(), st.st_mode, st.st_mtime_ns), made


def _victim(folder: Path, name: str, owner: int | None = None) -> Path:
    "A file whose content is a secret of its own."
    folder.mkdir(parents=True, exist_ok=True)
    (p := folder/name).write_text(f"precious {secrets.token_hex(8)}\n")
    if owner is not None:
        for x in (folder, p): os.chown(x, owner, owner)
    return p


@pytest.fixture
def victims(tmp_path):
    """The user's files: in a folder of the real home, in a folder of the host's /tmp, directly in /tmp (the sandbox
    has a /tmp of its own, so the same path exists in there), and in pytest's temporary folder."""
    t = _token()
    folders = [Path.home()/f".loco-victim-{t}", Path("/tmp")/f"loco-victim-{t}"]
    vs = [_victim(folders[0], f"victim-{t}"), _victim(folders[1], f"victim-{t}"),
          _victim(Path("/tmp"), f"loco-victim-{t}-file"), _victim(tmp_path, f"victim-{t}")]
    yield vs
    for f in folders: shutil.rmtree(f, ignore_errors=True)
    for x in Path("/tmp").glob(f"loco-victim-{t}-file*"): shutil.rmtree(x) if x.is_dir() else x.unlink()


@pytest.fixture
def own_victim():
    "A file the code's own user may change, in its own folder of /tmp: the controls' target."
    folder = Path(tempfile.mkdtemp(prefix="loco-control-"))
    yield _victim(folder, f"victim-{_token()}", CODE_UID if ROOT else None)
    shutil.rmtree(folder, ignore_errors=True)


def _program(victim: Path, attack: str) -> str:
    return f"import os, shutil, subprocess, sys\nV = {str(victim)!r}\nD, N = os.path.split(V)\n{attack}\n"


# ---------------------------------------------------------------- file calls, with and without a directory descriptor
FILE_ATTACKS = {
    "dir_fd unlink": "fd = os.open(D, os.O_RDONLY)\nos.unlink(N, dir_fd=fd)",
    "dir_fd open to write": "fd = os.open(D, os.O_RDONLY | os.O_DIRECTORY)\n"
                            "w = os.open(N, os.O_WRONLY | os.O_TRUNC, dir_fd=fd)\nos.write(w, b'escaped')",
    "dir_fd create": "fd = os.open(D, os.O_RDONLY)\nos.close(os.open(N + '.new', os.O_WRONLY | os.O_CREAT, dir_fd=fd))",
    "dir_fd rename": "fd = os.open(D, os.O_RDONLY)\nos.rename(N, N + '.moved', src_dir_fd=fd, dst_dir_fd=fd)",
    "dir_fd mkdir": "fd = os.open(D, os.O_RDONLY)\nos.mkdir(N + '.dir', dir_fd=fd)",
    "dir_fd chmod": "fd = os.open(D, os.O_RDONLY)\nos.chmod(N, 0o777, dir_fd=fd)",
    "dir_fd symlink": "fd = os.open(D, os.O_RDONLY)\nos.symlink('/etc/passwd', N + '.link', dir_fd=fd)",
    "via /proc/self/fd": "fd = os.open(D, os.O_RDONLY)\nopen(f'/proc/self/fd/{fd}/{N}', 'w').write('escaped')",
    "via /proc/self/root": "open('/proc/self/root' + V, 'a').write('escaped')",
    "open to write": "open(V, 'w').write('escaped')",
    "truncate": "os.truncate(V, 0)",
    "remove": "os.remove(V)",
    "rename": "os.rename(V, V + '.moved')",
    "utime": "os.utime(V, (0, 0))",
    "hard link": "os.link(V, V + '.link')",
    "symlink, then write through it": "os.symlink(V, 'link')\nopen('link', 'w').write('escaped')",
    "chdir, then a relative path": "os.chdir(D)\nopen(N, 'w').write('escaped')",
    "shutil.move": "shutil.move(V, V + '.moved')",
}
IN_OWN_FOLDER = {"rmtree of its folder": "shutil.rmtree(D)"}   # not for the victim directly in /tmp


@pytest.mark.parametrize("attack", [*FILE_ATTACKS, *IN_OWN_FOLDER])
def test_file_attacks_leave_the_users_files_alone(victims, attack):
    for v in victims:
        if attack in IN_OWN_FOLDER and v.parent == Path("/tmp"): continue
        before = _state(v)
        run_sandboxed(_program(v, {**FILE_ATTACKS, **IN_OWN_FOLDER}[attack]), timeout=10)
        assert _state(v) == before, (attack, v)


def test_inherited_descriptors_lead_nowhere(victims):
    "The harness has files open (a cache, a model); none of them may reach the program."
    prog = ("import os\nfor fd in range(3, 1024):\n"
            "    for f in (lambda: os.unlink(N, dir_fd=fd), lambda: os.mkdir(N + '.dir', dir_fd=fd),\n"
            "              lambda: open(f'/proc/self/fd/{fd}/{N}', 'w').write('x')):\n"
            "        try: f()\n        except (OSError, ValueError): pass")
    keep = [os.open(v.parent, os.O_RDONLY) for v in victims]   # a careless harness would pass these on
    try:
        for v in victims:
            before = _state(v)
            run_sandboxed(_program(v, prog))
            assert _state(v) == before, v
    finally:
        for fd in keep: os.close(fd)


def test_control_file_attacks_work_without_the_sandbox(unsandboxed, own_victim):
    for attack, code in {**FILE_ATTACKS, **IN_OWN_FOLDER}.items():
        v = _victim(own_victim.parent, f"victim-{_token()}", CODE_UID if ROOT else None)
        before = _state(v)
        unsandboxed(_program(v, code))
        assert _state(v) != before, attack


def test_new_files_outside_the_work_folder_stay_inside():
    "Creating files in the user's home, /tmp, /var/tmp, /dev/shm or the system: in there at most, never on the host."
    t = _token()
    targets = [Path.home()/f".loco-made-{t}", Path(f"/tmp/loco-made-{t}"), Path(f"/var/tmp/loco-made-{t}"),
               Path(f"/dev/shm/loco-made-{t}"), Path(f"/usr/loco-made-{t}"), Path(f"/etc/loco-made-{t}"),
               REPO/f"loco-made-{t}"]
    prog = f"for p in {[str(p) for p in targets]!r}:\n    try: open(p, 'w').write('escaped')\n    except OSError: pass"
    try:
        run_sandboxed(prog)
        assert not [p for p in targets if p.exists()]
    finally:
        for p in targets: p.unlink(missing_ok=True)


def test_control_new_files_appear_without_the_sandbox(unsandboxed):
    target = Path(f"/tmp/loco-made-{_token()}")
    try:
        unsandboxed(f"open({str(target)!r}, 'w').write('escaped')")
        assert target.exists()
    finally: target.unlink(missing_ok=True)


# ---------------------------------------------------------------- processes below subprocess, with a shell
def _shell(victim: Path) -> str: return f"echo escaped > {victim}; rm -f {victim}.keep"

FORK_EXEC = """import _posixsubprocess
cmd = [b'/bin/sh', b'-c', CMD.encode()]
head = [cmd, [b'/bin/sh'], True, (), None, None, -1, -1, -1, -1, -1, -1, *os.pipe(), True, False]
for tail in ([-1, None, None, None, -1, None, True], [-1, None, None, None, -1, None], [None, None, None, -1, None]):
    try: pid = _posixsubprocess.fork_exec(*head, *tail); break    # its signature differs between Python versions
    except TypeError: continue
os.waitpid(pid, 0)"""
SPAWN_ATTACKS = {
    "_posixsubprocess.fork_exec": FORK_EXEC,
    "os.system": "os.system(CMD)",
    "subprocess shell": "subprocess.run(CMD, shell=True, check=True)",
    "os.posix_spawn": "os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', CMD], {}), 0)",
    "os.fork + os.execv": "pid = os.fork()\nif pid == 0: os.execv('/bin/sh', ['sh', '-c', CMD])\nos.waitpid(pid, 0)",
    "os.execv in place": "os.execv('/bin/sh', ['sh', '-c', CMD])",
    "ctypes libc.system": "import ctypes\nctypes.CDLL(None).system(CMD.encode())",
    "multiprocessing": "import multiprocessing as mp\np = mp.Process(target=os.system, args=(CMD,))\n"
                       "p.start()\np.join()",
    "os.popen": "os.popen(CMD).read()",
}


@pytest.mark.parametrize("attack", SPAWN_ATTACKS)
def test_shells_cannot_touch_the_users_files(victims, attack):
    for v in victims:
        keep = _victim(v.parent, v.name + ".keep")
        before, kept = _state(v), _state(keep)
        run_sandboxed(_program(v, f"CMD = {_shell(v)!r}\n" + SPAWN_ATTACKS[attack]), timeout=10)
        assert (_state(v), _state(keep)) == (before, kept), (attack, v)


def test_control_shells_work_without_the_sandbox(unsandboxed, own_victim):
    for attack, code in SPAWN_ATTACKS.items():
        v = _victim(own_victim.parent, f"victim-{_token()}", CODE_UID if ROOT else None)
        before = _state(v)
        unsandboxed(_program(v, f"CMD = {_shell(v)!r}\n" + code))
        assert _state(v) != before, attack


# ---------------------------------------------------------------- processes that try to outlive the run
def _mark() -> str: return f"{3100 + secrets.randbelow(900)}.{secrets.randbelow(10**6):06d}"   # a unique `sleep` time


def _running(mark: str) -> list[int]:
    "Processes on the host (in any pid namespace) running `sleep mark`."
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and Path(f"/proc/{d}/cmdline").read_bytes() == f"sleep\0{mark}\0".encode():
                out.append(int(d))
        except OSError: pass
    return out


SURVIVORS = {   # (program, how the run ends)
    "fork + setsid": ("if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', M])", "passed"),
    "start_new_session": ("subprocess.Popen(['sleep', M], start_new_session=True)", "passed"),
    "double-fork daemon": ("if os.fork() == 0:\n    os.setsid()\n"
                           "    if os.fork() == 0: os.execvp('sleep', ['sleep', M])\n    os._exit(0)\nos.wait()",
                           "passed"),
    "start_new_session, then the timeout": ("subprocess.Popen(['sleep', M], start_new_session=True)\nwhile True: pass",
                                            "timeout"),
    "start_new_session, then a crash": ("subprocess.Popen(['sleep', M], start_new_session=True)\nraise SystemExit(3)",
                                        "failed"),
    "setsid in a shell": ("os.system(f'setsid sleep {M} > /dev/null 2>&1 &')", "passed"),
    "deaf to SIGTERM and SIGHUP": ("import signal\nfor s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT): "
                                   "signal.signal(s, signal.SIG_IGN)\n"
                                   "if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', M])\n"
                                   "os._exit(0)",
                                   "failed"),
}


@pytest.mark.parametrize("attack", SURVIVORS)
def test_nothing_outlives_the_run(attack):
    program, ends = SURVIVORS[attack]
    mark = _mark()
    t0 = time.perf_counter()
    r = run_sandboxed(f"import os, subprocess\nM = {mark!r}\n{program}", timeout=3)
    assert (r.status, _running(mark)) == (ends, []), (attack, r)
    assert time.perf_counter() - t0 < 10                    # the run did not wait for the sleeper either


def test_control_survivors_outlive_an_unsandboxed_run(unsandboxed):
    for attack, (program, _) in SURVIVORS.items():
        mark = _mark()
        unsandboxed(f"import os, subprocess\nM = {mark!r}\n{program}", timeout=3)
        time.sleep(0.3)                                   # the shell variant starts its sleeper in the background
        left = _running(mark)
        for pid in left: os.kill(pid, signal.SIGKILL)
        assert left, attack


# ---------------------------------------------------------------- exits that look like a pass
FAKE_PASSES = {
    "os._exit(0) before the tests": "import os\nos._exit(0)",
    "sys.exit(0) before the tests": "import sys\nsys.exit(0)",
    "raise SystemExit(0)": "raise SystemExit(0)",
    "SystemExit from the code under test": "def f():\n    raise SystemExit(0)\nassert f() == 1",
    "a failing assert turned into SystemExit(0)": "try:\n    assert 1 == 2\n"
                                                  "except AssertionError:\n    raise SystemExit(0)",
    "atexit hook calling os._exit(0)": "import atexit, os\natexit.register(os._exit, 0)",
    "excepthook calling os._exit(0)": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)",
    "a thread calling os._exit(0)": "import os, threading, time\nthreading.Thread(target=os._exit, args=(0,)).start()\n"
                                    "time.sleep(5)",
    "SIGALRM handler exiting 0": "import os, signal, time\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
                                 "signal.alarm(1)\ntime.sleep(5)",
    "SIGTERM to itself, handler exiting 0": "import os, signal\n"
                                            "signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
                                            "os.kill(os.getpid(), signal.SIGTERM)\nimport time; time.sleep(5)",
    "the parent exits 0, a child fails the tests": "import os\nif os.fork(): os._exit(0)",
    "exec of /bin/true": "import os\nos.execv('/bin/true', ['true'])",
    "fake marks on every descriptor": "import os\nfor fd in range(3, 64):\n    try: os.write(fd, b'0' * 32)\n"
                                      "    except OSError: pass\nos._exit(0)",
    "stdout closed, then exit 0": "import os\nos.close(1)\nos.close(2)\nos._exit(0)",
}


@pytest.mark.parametrize("attack", FAKE_PASSES)
def test_an_early_exit_is_never_a_pass(attack, unsandboxed):
    program = FAKE_PASSES[attack] + "\nassert False, 'the tests ran and failed'\n"
    r = run_sandboxed(program, timeout=8)
    assert (r.status, r.returncode) == ("failed", 0), r    # status 0: a harness that trusted it would say "passed"
    u = unsandboxed(program, timeout=8)
    assert (u.status, u.returncode) == ("failed", 0), u    # the nonce does not depend on the sandbox


def test_what_runs_to_its_end_passes():
    for program in ("print('x' * 100000)", "import sys\ntry: sys.exit(3)\nexcept SystemExit: pass",
                    "if __name__ == '__main__': print('main')", "import atexit\natexit.register(print, 'bye')",
                    "import os\nif os.fork() == 0: os._exit(0)\nos.wait()"):
        r = run_sandboxed(program + "\nassert 1 + 1 == 2\n")
        assert r.status == "passed", (program, r)


# ---------------------------------------------------------------- signals
def test_signals_cannot_stop_the_time_limit():
    for program in ("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, "
                    "signal.SIGALRM):\n    signal.signal(s, signal.SIG_IGN)\nwhile True: pass",
                    "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)",
                    "import os, signal\nos.kill(1, signal.SIGSTOP)\nos.kill(1, signal.SIGKILL)\nwhile True: pass"):
        t0 = time.perf_counter()
        r = run_sandboxed(program, timeout=2)
        assert r.status == "timeout" and time.perf_counter() - t0 < 8, (program, r)


@pytest.fixture
def host_process():
    "A process on the host that the code's own user could signal (it runs as that user)."
    p = subprocess.Popen(["sleep", "120"], start_new_session=True, **({"user": CODE_UID} if ROOT else {}))
    yield p
    p.kill(); p.wait()


KILLS = {   # each ends by checking that the process is there to be signalled at all
    "kill": "os.kill(PID, signal.SIGKILL)",
    "killpg": "os.killpg(PID, signal.SIGKILL)",
    "kill the parent first": "os.kill(os.getppid(), signal.SIGKILL)\nos.kill(PID, signal.SIGKILL)",
    "kill -1": "try: os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError: pass",
}


@pytest.mark.parametrize("attack", KILLS)
def test_host_processes_are_out_of_reach(host_process, attack):
    r = run_sandboxed(f"import os, signal\nPID = {host_process.pid}\n{KILLS[attack]}\nos.kill(PID, 0)")
    time.sleep(0.2)
    assert host_process.poll() is None and not r.passed, (attack, r)


def test_control_host_processes_can_be_killed_without_the_sandbox(host_process, unsandboxed):
    unsandboxed(f"import os, signal\nPID = {host_process.pid}\n{KILLS['kill']}")   # not kill -1: the whole host
    host_process.wait(timeout=5)


# ---------------------------------------------------------------- reading the user's files and the harness's secrets
READS = {
    "open": "print(open(V).read())",
    "cat": "print(subprocess.run(['cat', V], capture_output=True, text=True).stdout)",
    "list its folder": "print(os.listdir(D))",
    "/proc/self/root": "print(open('/proc/self/root' + V).read())",
    "search the whole tree": "for d, subs, files in os.walk('/'):\n"
                             "    subs[:] = [s for s in subs if os.path.join(d, s) not in ('/proc', '/sys', '/usr')]\n"
                             "    print(*(os.path.join(d, f) for f in files if f == N), end='')",
}


@pytest.mark.parametrize("attack", READS)
def test_the_users_files_cannot_be_read(victims, attack):
    for v in victims:
        secret = v.read_text().split()[1]
        r = run_sandboxed(_program(v, READS[attack]), timeout=20)
        assert secret not in r.stdout + r.stderr and v.name not in r.stdout, (attack, v, r)


def test_control_reads_work_without_the_sandbox(unsandboxed, own_victim):
    for attack, code in READS.items():
        r = unsandboxed(_program(own_victim, code), timeout=30)
        assert own_victim.name in r.stdout or own_victim.read_text().split()[1] in r.stdout, (attack, r)


@pytest.mark.skipif(not ROOT, reason="root-only files are unreadable to an ordinary user anyway")
def test_root_only_files_cannot_be_read():
    assert not run_sandboxed("print(open('/etc/shadow').read())").passed


def test_the_harness_environment_and_project_are_invisible(monkeypatch):
    secret = _token()
    monkeypatch.setenv("LOCO_TEST_SECRET", secret)
    r = run_sandboxed("import os\nprint(os.environ)\nfor p in ('/proc/self/environ', '/proc/1/environ'):\n"
                      "    try: print(open(p, 'rb').read())\n    except OSError: pass\nprint(os.listdir('/'))\n"
                      f"print(os.path.exists({str(REPO/'registry.yaml')!r}))")
    assert r.passed and secret not in r.stdout and r.stdout.rstrip().endswith("False"), r


# ---------------------------------------------------------------- the network
class Listeners:
    "TCP (all interfaces), UDP, an abstract and a file Unix socket on the host, counting whatever reaches them."
    def __init__(self):
        t = _token()
        self.tcp = socket.create_server(("0.0.0.0", 0)); self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); self.udp.bind(("127.0.0.1", 0))
        self.abstract = socket.socket(socket.AF_UNIX); self.abstract.bind(f"\0loco-test-{t}"); self.abstract.listen()
        self.path = f"/tmp/loco-sock-{t}"
        self.unix = socket.socket(socket.AF_UNIX); self.unix.bind(self.path); self.unix.listen()
        os.chmod(self.path, 0o777)   # the code's user may connect, were it not sandboxed
        self.ports = {"tcp": self.tcp.getsockname()[1], "udp": self.udp.getsockname()[1]}
        self.seen, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self._serve); self.thread.start()

    def _serve(self):
        socks = [self.tcp, self.udp, self.abstract, self.unix]
        while not self.stop.is_set():
            for s in select.select(socks, [], [], 0.1)[0]:
                if s is self.udp: self.seen.append(("udp", s.recvfrom(100)[0]))
                else: c, _ = s.accept(); c.close(); self.seen.append(("stream", s.getsockname()))

    def close(self):
        self.stop.set(); self.thread.join()
        for s in (self.tcp, self.udp, self.abstract, self.unix): s.close()
        os.unlink(self.path)

    def attacks(self) -> dict[str, str]:
        tcp, udp = self.ports["tcp"], self.ports["udp"]
        try: ip = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)[0][4][0]
        except OSError: ip = "127.0.0.1"
        return {
            "tcp 127.0.0.1": f"import socket\nsocket.create_connection(('127.0.0.1', {tcp}), timeout=3).sendall(b'x')",
            "tcp localhost": f"import socket\nsocket.create_connection(('localhost', {tcp}), timeout=3).sendall(b'x')",
            "tcp to the host's address": f"import socket\nsocket.create_connection(({ip!r}, {tcp}), timeout=3)",
            "http": f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{tcp}/', timeout=3)",
            "udp": "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   f"for _ in range(3): s.sendto(b'escaped', ('127.0.0.1', {udp})); time.sleep(0.1)",
            "abstract unix socket": "import socket\n"
                                    f"socket.socket(socket.AF_UNIX).connect({self.abstract.getsockname()!r})",
            "unix socket file": f"import socket\nsocket.socket(socket.AF_UNIX).connect({self.path!r})",
        }


@pytest.fixture
def listeners():
    ls = Listeners()
    yield ls
    ls.close()


def test_no_connection_reaches_the_host(listeners):
    for program in listeners.attacks().values(): run_sandboxed(program, timeout=8)
    time.sleep(0.3)
    assert listeners.seen == []


def test_control_connections_reach_the_host_without_the_sandbox(listeners, unsandboxed):
    for attack, program in listeners.attacks().items():
        n = len(listeners.seen)
        unsandboxed(program, timeout=8)
        time.sleep(0.3)
        assert len(listeners.seen) > n, attack


# ---------------------------------------------------------------- bombs
def test_a_fork_bomb_stops_at_the_process_limit():
    "Every process that cannot fork any more becomes a `sleep` we can count on the host: never more than the limit."
    mark, peak = _mark(), [0]
    bomb = f"import os\nwhile True:\n    try: os.fork()\n    except OSError: os.execvp('sleep', ['sleep', {mark!r}])"
    th = threading.Thread(target=lambda: peak.append(run_sandboxed(bomb, timeout=4, max_procs=16)))
    th.start()
    while th.is_alive():
        peak[0] = max(peak[0], len(_running(mark))); time.sleep(0.1)
    r = peak[1]
    assert r.status == "timeout" and 1 <= peak[0] <= 16 and _running(mark) == [], (peak, r)


def test_process_and_thread_bombs_fail_fast():
    for bomb in ("import os\nwhile True: os.fork()",
                 "import subprocess\nwhile True: subprocess.Popen(['sleep', '60'])",
                 "import threading, time\n"
                 "while True: threading.Thread(target=time.sleep, args=(60,), daemon=True).start()",
                 "import multiprocessing as mp\nps = [mp.Process(target=lambda: None) for _ in range(1000)]\n"
                 "[p.start() for p in ps]"):
        r = run_sandboxed(bomb, timeout=10, max_procs=16)
        assert r.status == "failed", (bomb, r)


def test_memory_bombs_hit_the_memory_limit():
    for bomb in ("x = bytearray(16 << 30)", "l = []\nfor _ in range(64): l.append(bytearray(16 << 20))",
                 "import mmap\nm = mmap.mmap(-1, 1 << 30)\nm[::4096] = b'x' * (1 << 18)", "x = ' ' * (1 << 30)"):
        r = run_sandboxed(bomb, timeout=20, memory_mb=256)   # each needs at least 1 GB to succeed
        assert r.status == "failed", (bomb, r)


def test_a_file_is_capped_at_the_file_size_limit():
    for bomb in ("open('big', 'wb').write(b'x' * (2 << 20))",
                 "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                 "open('big', 'wb').write(b'x' * (2 << 20))",
                 "with open('big', 'wb') as f: f.seek(1 << 30); f.write(b'x')",
                 "import sys\nwhile True: sys.stdout.write('x' * 65536)"):   # the harness's output file too
        t0 = time.perf_counter()
        r = run_sandboxed(bomb, timeout=10, max_file_mb=1)
        assert r.status == "failed" and time.perf_counter() - t0 < 8 and len(r.stdout) <= 2000, (bomb, r)


def test_the_work_folder_is_capped_at_the_disk_limit():
    fill = "for i in range(32): open(f'fill{i}', 'wb').write(b'x' * (1 << 20))"
    r = run_sandboxed(fill, timeout=20, max_file_mb=4, max_disk_mb=8)   # 32 MB into 8 MB
    assert r.status == "failed" and "No space left on device" in r.stderr, r
    assert not run_sandboxed("open('/dev/shm/x', 'wb').write(b'x')").passed   # nowhere else is writable


# ---------------------------------------------------------------- no sandbox: refused unless the user opts in
@pytest.fixture
def broken_bwrap():
    "A bubblewrap that cannot make namespaces, as on a kernel without unprivileged user namespaces."
    folder = Path(tempfile.mkdtemp(prefix="loco-bwrap-")); folder.chmod(0o755)
    (fake := folder/"bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\n"
                                        "exit 1\n")
    fake.chmod(0o755)
    yield fake
    shutil.rmtree(folder)


def test_without_bubblewrap_generated_code_is_refused(monkeypatch, broken_bwrap):
    fake = broken_bwrap
    for bwrap, reason in (("/nonexistent/bwrap", "no bubblewrap at /nonexistent/bwrap"),
                          (str(fake), "No permissions to create a new namespace")):   # no user namespaces
        monkeypatch.setenv("LOCOLLM_BWRAP", bwrap)
        with pytest.raises(LocoError, match="--allow-unsandboxed-code") as e: run_sandboxed("print(1)")
        assert reason in str(e.value)
        r = run_sandboxed("print(1)", allow_unsandboxed=True)
        assert (r.status, r.isolation, sandbox_isolation().describe()[:11]) == ("passed", "unsandboxed", "UNSANDBOXED")


def test_loco_eval_refuses_code_benchmarks_without_a_sandbox():
    t0 = time.perf_counter()
    r = run_loco("eval", "base", "--benchmarks", "humaneval", "--limit", "1", registry=REPO/"registry.yaml",
                 env={"LOCOLLM_BWRAP": "/nonexistent/bwrap"}, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "--allow-unsandboxed-code" in out and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1 and time.perf_counter() - t0 < 60   # refused before any model loads
