"""Sandboxed test execution: the verifier for code tasks (HumanEval, MBPP, the built-in generator).

Model-written code is hostile input. `run_tests` runs a program and its gold tests in a separate process
that cannot hurt the host and cannot fake a pass; `CodeVerifier` turns the result into a `Verdict` whose
score is the fraction of tests passed (HumanEval: Chen et al. 2021, https://arxiv.org/abs/2107.03374; MBPP:
Austin et al. 2021, https://arxiv.org/abs/2108.07732).

How a run is contained (details in `_code_runner.py`, the script that runs in the child):
- a new session and process group per run, killed whole on timeout; the runner's worker also dies with
  its supervisor (parent-death signal) and is killed by pid at the deadline;
- rlimits on CPU seconds, address space, file size, open files and processes (one: no fork, no threads);
- a fresh temporary directory as the working directory, removed afterwards; a minimal environment;
- no network: a new network namespace where the kernel allows it, and sockets refused in any case by an
  audit hook that also refuses process creation, signals, writes outside the sandbox, /proc, ctypes and
  frame/gc introspection; uid nobody when the host runs as root;
- stdout and stderr capped (the first `_MAX_OUTPUT` bytes are kept, the rest drained and counted).

How a pass is decided: only by the parent, from a report that carries a random nonce the parent sent to the
runner's supervisor after the worker was forked (so model code never held it), listing one secret-tagged
record per test result and a final "done" record written after every test ran. An early `os._exit(0)` or
`sys.exit(0)` leaves tests without results; a redefined `check`, AssertionError or `assert` changes nothing
(the gold test functions are built from their own compiled code; `assert` raises the real AssertionError);
writing records without the worker's secret marks the run as tampered. What stays possible: a program that
returns objects whose `__eq__` lies can satisfy `assert f(x) == y`, as in every in-process harness.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from selfimprove.tasks.task import Task
from selfimprove.verify._code_tests import TestPlan, plan_tests
from selfimprove.verify.base import Verdict

__all__ = [
    "STATUSES",
    "CodeResult",
    "CodeVerifier",
    "SandboxPool",
    "assemble_program",
    "run_tests",
    "run_tests_many",
]

logger = logging.getLogger(__name__)

STATUSES = ("passed", "failed", "error", "timeout", "memory", "killed")
_RUNNER = Path(__file__).with_name("_code_runner.py")
_MAX_OUTPUT = 8192  # bytes of the program's stdout+stderr kept for the detail
_MAX_FILE_BYTES = 16 << 20  # RLIMIT_FSIZE: the largest file a program may write in its sandbox
_MIN_MEMORY_MB = 64  # below this the interpreter itself cannot start its work
# A sandbox server's interpreter start (first run only) and the runner's lock-down happen outside the
# program's time limit; on a busy machine they can take seconds, so the parent waits this much longer
# for a report before killing the run's whole process group.
_STARTUP_GRACE = 15.0
# The child's whole environment: nothing inherited. A fixed hash seed makes set and dict orders of strings,
# and so verdicts, reproducible.
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
_PYTHON_FLAGS = ("-s", "-S", "-B") + (("-P",) if sys.version_info >= (3, 11) else ())


@dataclass(frozen=True)
class CodeResult:
    """The outcome of one sandboxed run.

    status: "passed" (every test passed), "failed" (some test failed), "error" (the program or the test
    setup raised, the program exited before the tests finished, or it tampered with the result channel),
    "timeout" (wall-clock or CPU limit), "memory" (a MemoryError under the address-space limit) or
    "killed" (the program died by a signal, e.g. the file-size limit, or the sandbox gave no valid report).
    """

    status: str
    passed: bool
    detail: str
    tests_passed: int = 0
    tests_total: int = 0  # results a fully passing run reports (tests that never ran count as failed)
    output: str = ""  # the program's stdout+stderr, first _MAX_OUTPUT bytes
    seconds: float = 0.0  # wall clock of the whole run, process start to report

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}; allowed: {', '.join(STATUSES)}")
        if self.passed != (self.status == "passed"):
            raise ValueError(f"passed={self.passed} contradicts status={self.status!r}")

    @property
    def score(self) -> float:
        """Fraction of tests passed, in [0, 1]."""
        return self.tests_passed / self.tests_total if self.tests_total else 0.0


# ---------------------------------------------------------------------------------------------------------
# runs


def _check_limits(timeout: float, memory_mb: int) -> None:
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout <= 3600):
        raise ValueError(f"timeout={timeout!r}; allowed: seconds in (0, 3600]")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < _MIN_MEMORY_MB:
        raise ValueError(f"memory_mb={memory_mb!r}; allowed: an integer >= {_MIN_MEMORY_MB}")


def run_tests(program: str, tests: str, *, timeout: float = 5.0, memory_mb: int = 512) -> CodeResult:
    """Run `program` then `tests` (Python source, in one namespace) in the sandbox; never raises on
    anything the program does. `timeout` is wall-clock seconds for the program and its tests (CPU time
    is limited to about the same); `memory_mb` caps the address space.

    Raises ValueError only for bad arguments or gold tests that do not parse or contain no assert.
    Each call starts a sandbox server and stops it; for many runs, use `run_tests_many` or a SandboxPool.
    """
    with SandboxPool(1) as pool:
        return pool.run(program, tests, timeout=timeout, memory_mb=memory_mb)


def run_tests_many(
    jobs: Sequence[tuple[str, str]],
    *,
    workers: int | None = None,
    timeout: float = 5.0,
    memory_mb: int = 512,
) -> list[CodeResult]:
    """`run_tests` over (program, tests) pairs, `workers` runs at a time (default: CPU count), in order.

    A job whose tests are invalid gets an "error" result instead of raising.
    """
    _check_limits(timeout, memory_mb)
    with SandboxPool(workers) as pool:
        return pool.run_many(jobs, timeout=timeout, memory_mb=memory_mb)


class SandboxPool:
    """Up to `workers` sandbox servers ("zygotes"), each serving one run at a time.

    A zygote is the runner script, started once: for every run it forks a fresh supervisor, which starts
    its own session and forks the worker that runs the program, so a run costs two forks instead of an
    interpreter start. The zygote itself never runs a job, so nothing passes from one run to the next.
    A zygote whose run did not end cleanly (timeout, crash) is stopped and replaced. Thread-safe; close it
    (or use it as a context manager) to stop the servers, which also stop when this process exits.
    """

    def __init__(self, workers: int | None = None) -> None:
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers={workers!r}; allowed: an integer >= 1")
        self.workers = workers
        self._idle: list[_Zygote] = []
        self._live: set[_Zygote] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(workers)
        self._finalizer = weakref.finalize(self, _stop_all, self._live)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every sandbox server (runs in flight end as "killed")."""
        self._finalizer()

    def run(self, program: str, tests: str, *, timeout: float = 5.0, memory_mb: int = 512) -> CodeResult:
        """`run_tests` on one of this pool's servers."""
        if not isinstance(program, str) or not isinstance(tests, str):
            raise ValueError(
                f"program and tests must be str, got {type(program).__name__} and {type(tests).__name__}"
            )
        _check_limits(timeout, memory_mb)
        plan = plan_tests(tests)
        job = {
            "program": program,
            "units": list(plan.units),
            "timeout": float(timeout),
            "memory_mb": memory_mb,
            "max_output": _MAX_OUTPUT,
            "max_file_bytes": _MAX_FILE_BYTES,
        }
        start = time.perf_counter()
        sandbox = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
        try:
            with self._slots:
                zygote = self._take()
                report, failure = zygote.run(json.dumps(job).encode(), sandbox, timeout + _STARTUP_GRACE)
                self._give_back(zygote, healthy=report is not None)
        finally:
            _remove_tree(sandbox)
        seconds = time.perf_counter() - start
        if report is None:
            status, detail = failure
            return CodeResult(status, False, detail, 0, plan.total, seconds=seconds)
        return _decide(report, plan, timeout=timeout, seconds=seconds)

    def run_many(
        self, jobs: Sequence[tuple[str, str]], *, timeout: float = 5.0, memory_mb: int = 512
    ) -> list[CodeResult]:
        """`run` over (program, tests) pairs, `workers` at a time, in order; invalid tests give "error"."""

        def one(job: tuple[str, str]) -> CodeResult:
            try:
                return self.run(job[0], job[1], timeout=timeout, memory_mb=memory_mb)
            except ValueError as err:
                return CodeResult("error", False, str(err))

        if self.workers == 1 or len(jobs) <= 1:
            return [one(job) for job in jobs]
        # Threads only wait on processes, so a thread pool is enough for throughput.
        with ThreadPoolExecutor(max_workers=min(self.workers, len(jobs))) as threads:
            return list(threads.map(one, jobs))

    def _take(self) -> _Zygote:
        with self._lock:
            if self._finalizer.alive is False:
                raise RuntimeError("this SandboxPool is closed")
            if self._idle:
                return self._idle.pop()
        zygote = _Zygote()
        with self._lock:
            self._live.add(zygote)
        return zygote

    def _give_back(self, zygote: _Zygote, *, healthy: bool) -> None:
        with self._lock:
            if healthy and self._finalizer.alive:
                self._idle.append(zygote)
                return
            self._live.discard(zygote)
        zygote.stop()


def _stop_all(zygotes: set[_Zygote]) -> None:
    for zygote in list(zygotes):
        zygote.stop()
    zygotes.clear()


class _Zygote:
    """One sandbox server process and the protocol to it (see _code_runner.py)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *_PYTHON_FLAGS, str(_RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),
            env=_ENV,
            start_new_session=True,
            close_fds=True,
        )
        self.buffer = b""

    def run(self, job: bytes, sandbox: str, wait: float) -> tuple[dict | None, tuple[str, str]]:
        """Send one run; its report if genuine, else None and (status, why). Kills the run's group on
        timeout; after any failure the caller must stop this zygote (the stream may be out of step)."""
        nonce = secrets.token_hex(16)
        # The sandbox path, the length-prefixed job, then the nonce: the supervisor reads the job exactly,
        # forks its worker, and only then reads the nonce, so the worker's memory never contains it.
        message = sandbox.encode() + b"\n" + b"%d\n" % len(job) + job + nonce.encode() + b"\n"
        deadline = time.monotonic() + wait
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(message)
            self.proc.stdin.flush()
            pid = int(self._line(deadline))
            line = self._line(deadline, pid=pid)
        except (OSError, ValueError) as err:
            return None, ("killed", f"the sandbox server failed ({err})")
        except TimeoutError:
            return None, ("timeout", f"the sandbox gave no report within {wait:.0f} s")
        try:
            report = json.loads(line)
        except ValueError:
            report = None
        if not isinstance(report, dict) or not hmac.compare_digest(str(report.get("nonce", "")), nonce):
            why = report.get("runner_error") if isinstance(report, dict) else None
            return None, ("killed", f"no valid report from the sandbox{f': {why}' if why else ''}")
        return report, ("", "")

    def _line(self, deadline: float, pid: int | None = None) -> bytes:
        """The next line of the server's stdout; on the deadline, SIGKILL the run's group (`pid`)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                raise TimeoutError
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise OSError(f"the sandbox server exited (code {self.proc.poll()})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def stop(self) -> None:
        """Close the server's stdin (it exits) and make sure it did; its runs' groups die with them."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _remove_tree(path: str) -> None:
    """Delete the sandbox directory, even where the program left unreadable or unwritable entries."""

    def make_writable(function, name, _exc_info) -> None:  # shutil.rmtree's onerror signature
        try:
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            os.chmod(name, stat.S_IRWXU)
            function(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)
    if os.path.exists(path):
        logger.warning("could not remove the sandbox directory %s", path)


# ---------------------------------------------------------------------------------------------------------
# the verdict


def _decide(report: dict, plan: TestPlan, *, timeout: float, seconds: float) -> CodeResult:
    """The parent's decision from a genuine report: a pass needs every planned result, then "done"."""
    results: dict[tuple[int, int], tuple[bool, str]] = {}
    program_error = setup_error = None
    memory = done = False
    counts = [u.get("count", 1) if u["kind"] in ("assert", "call") else 0 for u in plan.units]
    for record in report.get("records", []):
        tag, _, rest = str(record).partition(" ")
        if tag == "D":
            done = True
        elif tag == "E":
            program_error = rest
            memory = memory or rest.startswith("MemoryError")
        elif tag in ("P", "F", "M", "S"):
            unit, _, rest = rest.partition(" ")
            j, _, message = rest.partition(" ")
            if not (unit.isdigit() and j.isdigit()):
                continue
            key = (int(unit), int(j))
            memory = memory or tag == "M"
            if tag == "S":
                setup_error = f"test setup (line {plan.lines[key[0]]}) raised {message}"
            elif key[0] < len(counts) and key[1] < counts[key[0]] and key not in results:
                results[key] = (tag == "P", message)
    passed = sum(ok for ok, _ in results.values())
    output = str(report.get("output", ""))
    if report.get("output_bytes", 0) > len(output.encode()):
        output += f"\n[... {report['output_bytes']:,} bytes of output in all]"

    def result(status: str, detail: str) -> CodeResult:
        return CodeResult(status, status == "passed", detail, passed, plan.total, output, seconds)

    signum = report.get("signal")
    if report.get("tampered"):
        return result("error", "the program wrote to the sandbox's result channel")
    if report.get("timed_out") or signum in (signal.SIGXCPU, signal.SIGKILL):
        which = "CPU" if signum == signal.SIGXCPU else "wall-clock"
        return result("timeout", f"over the {which} time limit ({timeout:g} s); {passed}/{plan.total} passed")
    if memory:
        return result("memory", f"MemoryError under the address-space limit; {passed}/{plan.total} passed")
    if signum is not None:
        name = signal.Signals(signum).name if signum in signal.Signals.__members__.values() else str(signum)
        why = " (file size limit)" if signum == signal.SIGXFSZ else ""
        return result("killed", f"the program was killed by {name}{why}")
    if program_error is not None:
        return result("error", f"the program raised {program_error}")
    if setup_error is not None:
        return result("error", setup_error)
    if not done:
        return result(
            "error", f"the program exited (code {report.get('exit_code')}) before the tests finished"
        )
    if passed == plan.total and report.get("exit_code") == 0:
        return result("passed", f"{passed}/{plan.total} tests passed")
    failures = sorted(key for key, (ok, _) in results.items() if not ok)
    first = (
        f"; first failure (line {plan.lines[failures[0][0]]}): {results[failures[0]][1]}" if failures else ""
    )
    return result("failed", f"{passed}/{plan.total} tests passed{first}")


# ---------------------------------------------------------------------------------------------------------
# the Verifier


def assemble_program(task: Task, completion: str) -> str:
    """The program a completion stands for: the task's code prompt followed by the completion.

    `task.metadata["prompt"]` is the code the completion continues (HumanEval-style: a signature and
    docstring; "" when the model writes the whole program). With `metadata["completion"] == "body"` the
    completion is a function body, so it ends at its first non-blank line that starts in column 0 (the
    rule of the Codex paper's stop sequences): what a model writes after the function is not run.
    """
    prefix = str(task.metadata.get("prompt", ""))
    if task.metadata.get("completion") == "body":
        lines = completion.split("\n")
        end = next((i for i, line in enumerate(lines) if line.strip() and not line[0].isspace()), len(lines))
        completion = "\n".join(lines[:end])
    return prefix + completion + "\n"


class CodeVerifier:
    """The Verifier for `kind == "code"` tasks: run the task's gold tests against prompt + completion.

    score = fraction of tests passed; correct = every test passed. `task.metadata` holds "tests" (source
    run after the program), "prompt" and "completion" (see `assemble_program`). `check_many` verifies many
    completions in parallel; the verifier keeps its sandbox servers (a SandboxPool of `workers`) between
    calls, so a search's many small checks cost two forks each.
    """

    def __init__(self, timeout: float = 5.0, memory_mb: int = 512, workers: int | None = None) -> None:
        _check_limits(timeout, memory_mb)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.pool = SandboxPool(workers)

    def check(self, task: Task, completion: str) -> Verdict:
        """Run the tests; never raises (a task without valid tests gives an incorrect verdict)."""
        return self.check_many([task], [completion])[0]

    def check_many(self, tasks: Sequence[Task], completions: Sequence[str]) -> list[Verdict]:
        """Verdicts for (task, completion) pairs, run `workers` sandboxes at a time."""
        if len(tasks) != len(completions):
            raise ValueError(f"{len(tasks)} tasks but {len(completions)} completions")
        jobs, bad = [], {}
        for i, (task, completion) in enumerate(zip(tasks, completions, strict=True)):
            tests = task.metadata.get("tests")
            if not isinstance(tests, str) or not tests.strip():
                bad[i] = f"task {task.id} has no tests in metadata['tests']"
                continue
            jobs.append((i, assemble_program(task, completion), tests))
        results = self.pool.run_many(
            [(program, tests) for _, program, tests in jobs], timeout=self.timeout, memory_mb=self.memory_mb
        )
        verdicts: list[Verdict] = [Verdict(False, 0.0, None, bad.get(i, "")) for i in range(len(tasks))]
        for (i, _, _), res in zip(jobs, results, strict=True):
            # predicted stays None: a program is not an answer to vote on (maj@k clusters answers).
            verdicts[i] = Verdict(res.passed, res.score, None, f"{res.status}: {res.detail}")
        return verdicts

    def close(self) -> None:
        """Stop the sandbox servers now (they also stop when the verifier is garbage-collected)."""
        self.pool.close()
