"""The code sandbox: verdicts and scores, and an evil-program suite where every attack is contained.

Every evil run is bounded (timeouts of 1-2 s, 128 MB of address space). After each test, no sandbox
process may be left and the host must be unharmed (files, environment, signals, sockets).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from selfimprove.tasks.task import Task
from selfimprove.verify.base import Verdict
from selfimprove.verify.code import (
    CodeResult,
    CodeVerifier,
    SandboxPool,
    assemble_program,
    run_tests,
    run_tests_many,
)
from selfimprove.verify.registry import make_verifier

SQUARE_TESTS = "assert f(2) == 4\nassert f(3) == 9\nassert f(-1) == 1\n"
GOOD = "def f(x):\n    return x * x\n"
LIMITS = {"timeout": 2.0, "memory_mb": 128}


def _sandbox_processes() -> list[int]:
    """Pids whose working directory is a sandbox (readable for every process when running as root)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if "selfimprove-sandbox-" in os.readlink(f"/proc/{entry}/cwd"):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _servers() -> list[int]:
    """Pids of sandbox servers (zygotes) of this test process."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if b"_code_runner.py" in cmdline and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def _nothing_left_behind():
    yield
    gc.collect()  # verifiers stop their servers when collected
    deadline = time.monotonic() + 2.0  # a killed group may take a moment to be reaped
    while (_sandbox_processes() or _servers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandbox_processes() == [] and _servers() == []


def _many(programs: list[str], tests: str = SQUARE_TESTS, **limits: float) -> list[CodeResult]:
    return run_tests_many([(p, tests) for p in programs], workers=2, **{**LIMITS, **limits})


# ---------------------------------------------------------------------------------------------------------
# verdicts


def test_pass_fail_and_fraction_of_tests() -> None:
    good, half, bad_syntax, raises = _many(
        [GOOD, "def f(x):\n    return 4 if x == 2 else 0\n", "def f(x) return x\n", "raise KeyError('k')\n"]
    )
    assert (good.status, good.passed, good.tests_passed, good.tests_total, good.score) == (
        "passed",
        True,
        3,
        3,
        1,
    )
    assert (half.status, half.passed, half.tests_passed, half.score) == (
        "failed",
        False,
        1,
        pytest.approx(1 / 3),
    )
    assert "line 2" in half.detail and "AssertionError" in half.detail
    assert (
        bad_syntax.status == "error" and "SyntaxError" in bad_syntax.detail and bad_syntax.tests_passed == 0
    )
    assert raises.status == "error" and "KeyError" in raises.detail


def test_check_function_style_tests_report_each_assert() -> None:
    # HumanEval's form: a check(candidate) function, then check(entry point). Each assert is one result,
    # a failing one does not hide the next, and setup inside check keeps its function scope.
    tests = (
        "def check(candidate):\n    str = 'shadowed only here'\n    assert candidate(2) == 4\n"
        "    assert candidate(3) == 9\n    for x in range(3):\n"
        "        assert candidate(x) == x * x\n\ncheck(f)\n"
    )
    full, partial = _many([GOOD, "def f(x):\n    return str(x * x) if x != 3 else 0\n"], tests)
    assert (full.status, full.tests_passed, full.tests_total) == ("passed", 3, 3)
    assert (partial.status, partial.tests_passed, partial.tests_total) == ("failed", 0, 3)
    fixed = _many(["def f(x):\n    return x * x if x != 3 else 0\n"], tests)[0]
    assert (fixed.status, fixed.tests_passed) == ("failed", 2)


def test_setup_failure_is_an_error_and_bad_tests_are_refused() -> None:
    result = run_tests(GOOD, "x = undefined_name\nassert f(2) == 4\n", **LIMITS)
    assert result.status == "error" and "test setup (line 1)" in result.detail and result.tests_total == 1
    with pytest.raises(ValueError, match="tests contain no assert"):
        run_tests(GOOD, "x = 1\nassert True\n")
    with pytest.raises(ValueError, match="tests do not parse"):
        run_tests(GOOD, "assert (\n")
    with pytest.raises(ValueError, match="memory_mb=8"):
        run_tests(GOOD, SQUARE_TESTS, memory_mb=8)


def test_the_sandbox_can_write_inside_itself_and_hashing_is_reproducible() -> None:
    program = (
        "import tempfile, json\nopen('notes.txt', 'w').write('ok')\nfd, name = tempfile.mkstemp()\n"
        "words = list({'apple', 'banana', 'cherry', 'damson', 'elder'})\nprint(json.dumps(words))\n"
        "def f(x):\n    return x * x if open('notes.txt').read() == 'ok' else 0\n"
    )
    first, second = _many([program, program])
    assert first.status == second.status == "passed"
    assert first.output == second.output and "apple" in first.output  # PYTHONHASHSEED is fixed


def test_pool_gives_the_serial_results_in_order() -> None:
    programs = [
        GOOD,
        "def f(x):\n    return x\n",
        "def f(x):\n    return abs(x) ** 2\n",
        "import os\nos._exit(0)\n",
    ]
    serial = [run_tests(p, SQUARE_TESTS, **LIMITS) for p in programs]
    pooled = _many(programs)
    assert [(r.status, r.tests_passed) for r in pooled] == [(r.status, r.tests_passed) for r in serial]
    assert [r.status for r in pooled] == ["passed", "failed", "passed", "error"]


def test_a_pool_reuses_its_servers_but_no_state_passes_between_runs() -> None:
    leak = "import json\njson.leaked = True\nopen('left.txt', 'w').write('x')\n" + GOOD
    probe = (
        "import json, os\nseen = [hasattr(json, 'leaked'), os.path.exists('left.txt'), os.listdir('.')]\n"
        "def f(x):\n    return x * x if seen == [False, False, []] else 0\n"
    )
    with SandboxPool(1) as pool:
        first = pool.run(leak, SQUARE_TESTS, **LIMITS)
        servers = _servers()
        timed_out = pool.run("while True:\n    pass\n", SQUARE_TESTS, timeout=0.5, memory_mb=128)
        second = pool.run(probe, SQUARE_TESTS, **LIMITS)
        assert len(servers) == 1 and _servers() == servers  # one server did all three runs
        os.kill(servers[0], signal.SIGKILL)  # a server that dies is reported, then replaced
        lost = pool.run(GOOD, SQUARE_TESTS, **LIMITS)
        third = pool.run(probe, SQUARE_TESTS, **LIMITS)
        assert len(_servers()) == 1 and _servers() != servers
    assert _servers() == []
    statuses = (first.status, timed_out.status, second.status, lost.status, third.status)
    assert statuses == ("passed", "timeout", "passed", "killed", "passed")
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(GOOD, SQUARE_TESTS)


# ---------------------------------------------------------------------------------------------------------
# evil programs: resources


def test_fork_bomb_threads_and_multiprocessing_are_refused() -> None:
    results = _many(
        [
            "import os\nwhile True:\n    os.fork()\n",
            "import threading, time\nwhile True:\n"
            "    threading.Thread(target=time.sleep, args=(60,)).start()\n",
            "import multiprocessing\nmultiprocessing.Process(target=print).start()\n",
        ]
    )
    assert [r.status for r in results] == ["error"] * 3
    assert "os.fork is not allowed" in results[0].detail
    assert "can't start new thread" in results[1].detail


def test_infinite_loop_times_out_quickly() -> None:
    start = time.monotonic()
    result = run_tests("while True:\n    pass\n", SQUARE_TESTS, timeout=1.0, memory_mb=128)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 6.0


def test_memory_bombs_hit_the_address_space_limit() -> None:
    results = _many(
        [
            "x = bytearray(1 << 34)\n",
            "x = [0] * (1 << 31)\n",
            "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 20))\n",
            "def f(x):\n    return len('a' * (1 << 33))\n",
        ]
    )
    assert [r.status for r in results] == ["memory"] * 4


def test_100_mb_of_output_is_capped_and_a_big_file_is_stopped() -> None:
    noisy, big_file = _many(
        [
            "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n" + GOOD,
            "with open('big.bin', 'wb') as out:\n    out.write(bytes(64 << 20))\n" + GOOD,
        ],
        timeout=10.0,
    )
    assert noisy.status == "passed"  # contained: the output was drained and dropped, the tests still ran
    assert len(noisy.output) < 9000 and "104,857,600 bytes of output" in noisy.output
    # Python ignores SIGXFSZ, so the file-size limit surfaces as EFBIG in the program
    assert big_file.status == "error" and "File too large" in big_file.detail


def test_a_program_that_never_returns_while_holding_the_pipe_is_killed() -> None:
    start = time.monotonic()
    results = _many(
        [
            "import time\ntime.sleep(3600)\n",
            "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(3600)\n",
            "import os, time\nos.setsid()\ntime.sleep(3600)\n",
            "import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\ntime.sleep(3600)\n",
            "while True:\n    print('x' * 1000)\n",
        ],
        timeout=1.0,
    )
    assert [r.status for r in results] == ["timeout"] * 5
    assert time.monotonic() - start < 15.0


# ---------------------------------------------------------------------------------------------------------
# evil programs: the host


def test_writing_or_deleting_outside_the_sandbox_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    marker = Path("/tmp") / f"selfimprove-evil-{os.getpid()}-{time.time_ns()}"
    attempts = [
        f"open({str(victim)!r}, 'w').write('gone')",
        f"os.remove({str(victim)!r})",
        f"os.rename({str(victim)!r}, {str(victim)!r} + '.moved')",
        f"os.chmod({str(victim)!r}, 0o777)",
        f"os.truncate({str(victim)!r}, 0)",
        f"shutil.rmtree({str(tmp_path)!r})",
        f"os.close(os.open({str(marker)!r}, os.O_WRONLY | os.O_CREAT))",
        f"pathlib.Path({str(marker)!r}).write_text('x')",
        f"os.mkdir({str(marker)!r})",
        "open('../escape.txt', 'w').write('x')",
        "os.symlink('/tmp', 'link'); open('link/escape.txt', 'w')",
        "os.chdir('/tmp'); open('escape.txt', 'w')",
        f"open(os.open({str(marker)!r}, os.O_RDWR | os.O_CREAT), 'w')",
    ]
    program = "import os, shutil, pathlib\nescaped = []\n" + "".join(
        f"try:\n    {a}\n    escaped.append({a!r})\nexcept Exception:\n    pass\n" for a in attempts
    )
    program += "open('inside.txt', 'w').write('fine')\ndef f():\n    return escaped\n"
    result = run_tests(program, "assert f() == []\n", **LIMITS)
    assert result.status == "passed", result.detail
    assert victim.read_text() == "precious" and not marker.exists()
    assert not (tmp_path.parent / "escape.txt").exists() and not Path("/tmp/escape.txt").exists()


def test_sockets_are_refused(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    attempts = [
        f"socket.create_connection(('127.0.0.1', {port}), timeout=1)",
        f"socket.socket().connect(('127.0.0.1', {port}))",
        f"_socket.socket().connect(('127.0.0.1', {port}))",
        "socket.create_connection(('8.8.8.8', 53), timeout=1)",
        "socket.getaddrinfo('example.com', 80)",
        "socket.socket(socket.AF_UNIX).bind('sock')",
    ]
    program = "import socket, _socket\nreached = []\n" + "".join(
        f"try:\n    {a}\n    reached.append({a!r})\nexcept Exception:\n    pass\n" for a in attempts
    )
    program += "def f():\n    return reached\n"
    try:
        result = run_tests(program, "assert f() == []\n", **LIMITS)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    finally:
        server.close()
    assert result.status == "passed", result.detail


def test_killing_the_parent_or_the_host_is_refused() -> None:
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(1))
    program = (
        "import os, signal\noutcomes = []\n"
        f"for target, sig in ((os.getppid(), signal.SIGKILL), ({os.getpid()}, signal.SIGUSR1)):\n"
        "    try:\n        os.kill(target, sig)\n        outcomes.append('sent')\n"
        "    except OSError as err:\n        outcomes.append(type(err).__name__)\n"
        "try:\n    os.killpg(0, signal.SIGKILL)\n    outcomes.append('sent')\n"
        "except OSError as err:\n    outcomes.append(type(err).__name__)\n"
        "outcomes.append(hasattr(os, 'pidfd_open') or hasattr(signal, 'pidfd_send_signal'))\n"
        "def f():\n    return outcomes\n"
    )
    try:
        result = run_tests(program, "assert f() == ['PermissionError'] * 3 + [False]\n", **LIMITS)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result.status == "passed", result.detail  # and the supervisor lived to report it
    assert received == []


def test_spawning_a_shell_is_refused() -> None:
    marker = Path("/tmp") / f"selfimprove-shell-{os.getpid()}-{time.time_ns()}"
    attempts = [
        f"os.system('touch {marker}')",
        f"subprocess.run(['/bin/sh', '-c', 'touch {marker}'])",
        f"os.posix_spawn('/bin/sh', ['sh', '-c', 'touch {marker}'], {{}})",
        f"pty.spawn(['/bin/sh', '-c', 'touch {marker}'])",
        f"os.execv('/bin/sh', ['sh', '-c', 'touch {marker}'])",
    ]
    program = "import os, subprocess, pty\nspawned = []\n" + "".join(
        f"try:\n    {a}\n    spawned.append({a!r})\nexcept Exception:\n    pass\n" for a in attempts
    )
    program += "def f():\n    return spawned\n"
    result = run_tests(program, "assert f() == []\n", **LIMITS)
    assert result.status == "passed", result.detail
    assert not marker.exists()


def test_the_parents_environment_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"hunter2-{time.time_ns()}"
    monkeypatch.setenv("SELFIMPROVE_TEST_SECRET", secret)
    program = (
        "import os\nfound = [k for k, v in os.environ.items() if 'hunter2' in v or 'SECRET' in k]\n"
        f"for path in ('/proc/{os.getpid()}/environ', f'/proc/{{os.getppid()}}/environ', '/proc/1/environ',\n"
        "             '/proc/self/environ', '/dev/fd/0'):\n"
        "    try:\n        found.append(open(path, 'rb').read()[:1000])\n    except OSError:\n        pass\n"
        "try:\n    found.append(os.listdir('/proc'))\nexcept OSError:\n    pass\n"
        "print(sorted(os.environ))\n"
        "def f():\n    return found\n"
    )
    result = run_tests(program, "assert f() == []\n", **LIMITS)
    assert result.status == "passed", result.detail
    assert secret not in result.output and "SELFIMPROVE_TEST_SECRET" not in result.output
    assert result.output.strip() == "['HOME', 'LANG', 'PATH', 'TMPDIR']"


# ---------------------------------------------------------------------------------------------------------
# evil programs: faking a pass


def test_exiting_early_never_counts_as_a_pass() -> None:
    results = _many(
        [
            "import os\nos._exit(0)\n" + GOOD,
            "import sys\nsys.exit(0)\n" + GOOD,
            "def f(x):\n    import os\n    os._exit(0)\n",
            "def f(x):\n    raise SystemExit(0)\n",
            "import atexit, os\natexit.register(os._exit, 0)\ndef f(x):\n    return 0\n",
        ]
    )
    assert [r.status for r in results] == ["error", "error", "error", "failed", "failed"]
    assert not any(r.passed for r in results)
    assert "before the tests finished" in results[0].detail and "SystemExit" in results[1].detail


def test_overriding_assert_or_the_harness_never_counts_as_a_pass() -> None:
    check_tests = (
        "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n\ncheck(f)\n"
    )
    wrong = "def f(x):\n    return 0\n"
    programs = [
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n" + wrong,
        "AssertionError = None\nBaseException = KeyError\n" + wrong,
        "def check(candidate):\n    pass\n" + wrong,
        # rebind `check` while the tests run, from a timer signal handler
        "import signal\ndef hijack(*_):\n    globals()['check'] = lambda c, **k: None\n"
        "signal.signal(signal.SIGALRM, hijack)\nsignal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)\n" + wrong,
        # forge the runner's records on every descriptor, then leave before the tests
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'P 1 0\\nP 1 1\\nD\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)\n",
        # skip failing lines with a tracer, or dig the runner's secrets out of its frames and the heap
        "import sys\ntry:\n    sys.settrace(lambda *a: None)\nexcept Exception:\n    pass\n" + wrong,
        "import sys, gc\nleaks = []\nfor grab in (lambda: sys._getframe(1).f_locals, gc.get_objects):\n"
        "    try:\n        leaks.append(grab())\n    except Exception:\n        pass\n"
        "def f(x):\n    return 'leak' if leaks else 0\n",
        "import ctypes\n" + wrong,
    ]
    results = _many(programs, check_tests)
    assert not any(r.passed for r in results)
    assert [r.status for r in results] == ["failed"] * 4 + ["error", "failed", "failed", "error"]
    assert "result channel" in results[4].detail
    assert "ctypes is not available" in results[7].detail


# ---------------------------------------------------------------------------------------------------------
# the Verifier


def _task(completion_mode: str = "body") -> Task:
    prompt = 'def f(x):\n    """Square x."""\n'
    return Task(
        id="square",
        question=prompt,
        answer="",
        kind="code",
        metadata={"prompt": prompt, "completion": completion_mode, "tests": SQUARE_TESTS},
    )


def test_code_verifier_scores_and_trims_what_follows_the_body() -> None:
    assert isinstance(make_verifier("code"), CodeVerifier)
    verifier = CodeVerifier(timeout=1.0, memory_mb=128, workers=2)
    task = _task()
    trailing = "    return x * x\nprint('junk after the function')\nthis is not python\n"
    assert assemble_program(task, trailing) == task.metadata["prompt"] + "    return x * x\n"
    verdicts = verifier.check_many(
        [task, task, task, _task("program"), Task(id="t", question="q", answer="", kind="code")],
        ["    return x * x\n", trailing, "    return 4\n", "def f(x):\n    return x ** 2\n", "x"],
    )
    assert [v.correct for v in verdicts] == [True, True, False, True, False]
    assert verdicts[2].score == pytest.approx(1 / 3) and verdicts[2].detail.startswith("failed: 1/3")
    assert verdicts[4] == Verdict(False, 0.0, None, "task t has no tests in metadata['tests']")
    assert verifier.check(task, "    while True: pass\n").detail.startswith("timeout")
