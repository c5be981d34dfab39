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
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from selfimprove.tasks.task import Task
from selfimprove.verify._code_tests import TestPlan, plan_tests
from selfimprove.verify.base import Verdict

__all__ = ["STATUSES", "CodeResult", "CodeVerifier", "assemble_program", "run_tests", "run_tests_many"]

logger = logging.getLogger(__name__)

STATUSES = ("passed", "failed", "error", "timeout", "memory", "killed")
_RUNNER = Path(__file__).with_name("_code_runner.py")
_MAX_OUTPUT = 8192  # bytes of the program's stdout+stderr kept for the detail
_MAX_FILE_BYTES = 16 << 20  # RLIMIT_FSIZE: the largest file a program may write in its sandbox
_MIN_MEMORY_MB = 64  # below this the interpreter itself cannot start its work
# Python's own startup and the runner's lock-down happen outside the program's time limit; on a busy
# machine they can take seconds, so the parent waits this much longer before killing the whole group.
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
# one run


def run_tests(program: str, tests: str, *, timeout: float = 5.0, memory_mb: int = 512) -> CodeResult:
    """Run `program` then `tests` (Python source, in one namespace) in the sandbox; never raises on
    anything the program does. `timeout` is wall-clock seconds for the program and its tests (CPU time
    is limited to about the same); `memory_mb` caps the address space.

    Raises ValueError only for bad arguments or gold tests that do not parse or contain no assert.
    """
    if not isinstance(program, str) or not isinstance(tests, str):
        raise ValueError(
            f"program and tests must be str, got {type(program).__name__} and {type(tests).__name__}"
        )
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= 3600):
        raise ValueError(f"timeout={timeout!r}; allowed: seconds in (0, 3600]")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < _MIN_MEMORY_MB:
        raise ValueError(f"memory_mb={memory_mb!r}; allowed: an integer >= {_MIN_MEMORY_MB}")
    plan = plan_tests(tests)
    start = time.perf_counter()
    sandbox = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
    try:
        report, failure = _spawn(program, plan, sandbox, timeout=timeout, memory_mb=memory_mb)
    finally:
        _remove_tree(sandbox)
    seconds = time.perf_counter() - start
    if report is None:
        return CodeResult("killed" if failure[0] == "killed" else "timeout", False, failure[1], 0, plan.total,
                          seconds=seconds)  # fmt: skip
    return _decide(report, plan, timeout=timeout, seconds=seconds)


def run_tests_many(
    jobs: Sequence[tuple[str, str]],
    *,
    workers: int | None = None,
    timeout: float = 5.0,
    memory_mb: int = 512,
) -> list[CodeResult]:
    """`run_tests` over (program, tests) pairs, `workers` sandboxes at a time (default: CPU count).

    Each run is its own process; threads only wait on them, so a thread pool is enough for throughput.
    Results come back in the order of `jobs`. A job whose tests are invalid gets an "error" result.
    """
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers={workers!r}; allowed: an integer >= 1")

    def one(job: tuple[str, str]) -> CodeResult:
        try:
            return run_tests(job[0], job[1], timeout=timeout, memory_mb=memory_mb)
        except ValueError as err:
            return CodeResult("error", False, str(err))

    if workers == 1 or len(jobs) <= 1:
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(one, jobs))


def _spawn(
    program: str, plan: TestPlan, sandbox: str, *, timeout: float, memory_mb: int
) -> tuple[dict | None, tuple[str, str]]:
    """Start the runner, hand it the job and then the nonce, and return its report if it is genuine."""
    job = {
        "program": program,
        "units": list(plan.units),
        "timeout": float(timeout),
        "memory_mb": memory_mb,
        "max_output": _MAX_OUTPUT,
        "max_file_bytes": _MAX_FILE_BYTES,
    }
    body = json.dumps(job).encode()
    nonce = secrets.token_hex(16)
    # Length-prefixed job, then the nonce: the runner reads the job exactly, forks its worker, and only
    # then reads the nonce, so the worker's memory never contains it.
    payload = b"%d\n" % len(body) + body + nonce.encode() + b"\n"
    proc = subprocess.Popen(
        [sys.executable, *_PYTHON_FLAGS, str(_RUNNER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=sandbox,
        env=_ENV,
        start_new_session=True,
        close_fds=True,
    )
    try:
        stdout, stderr = proc.communicate(payload, timeout=timeout + _STARTUP_GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, ("timeout", f"the sandbox gave no report within {timeout + _STARTUP_GRACE:.0f} s")
    finally:
        if proc.returncode is None:
            _kill_group(proc)
    lines = stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except ValueError:
        report = None
    if not isinstance(report, dict) or not hmac.compare_digest(str(report.get("nonce", "")), nonce):
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return None, (
            "killed",
            f"no valid report from the sandbox (exit {proc.returncode}): {' | '.join(tail)}",
        )
    return report, ("", "")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group (its session leader's pid is the group id), then reap."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=2.0)
    except subprocess.TimeoutExpired:  # something outside the group still holds a pipe: stop reading
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


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
    completions in parallel sandboxes.
    """

    def __init__(self, timeout: float = 5.0, memory_mb: int = 512, workers: int | None = None) -> None:
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < _MIN_MEMORY_MB:
            raise ValueError(f"memory_mb={memory_mb!r}; allowed: an integer >= {_MIN_MEMORY_MB}")
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.workers = workers

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
        results = run_tests_many(
            [(program, tests) for _, program, tests in jobs],
            workers=self.workers,
            timeout=self.timeout,
            memory_mb=self.memory_mb,
        )
        verdicts: list[Verdict] = [Verdict(False, 0.0, None, bad.get(i, "")) for i in range(len(tasks))]
        for (i, _, _), res in zip(jobs, results, strict=True):
            # predicted stays None: a program is not an answer to vote on (maj@k clusters answers).
            verdicts[i] = Verdict(res.passed, res.score, None, f"{res.status}: {res.detail}")
        return verdicts
