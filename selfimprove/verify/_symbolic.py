"""The symbolic stage of math equivalence, in a worker process that can be abandoned.

Whatever the exact Fraction path cannot decide (pi, roots, symbols, functions) goes to sympy. sympy calls
such as `simplify` cannot be interrupted from another thread, and SIGALRM timeouts only work on a process's
main thread, so a verifier called from a worker thread could hang. Instead the comparison runs in one
persistent child process (`python -m selfimprove.verify._symbolic`): the caller waits on a queue with its
deadline and, when the deadline passes, kills the child and returns "unknown"; the next call starts a
fresh one. The child receives only normalised answer text and rebuilds it with the safe parser of
`_expr`, so nothing from a model ever reaches `eval`.

Protocol: the child prints `ready` once sympy is imported, then answers each JSON line
{"id", "a", "b", "seconds"} with {"id", "equal"}. It also arms its own timer per request (it is the main
thread there), so an orphaned child cannot spin forever.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from selfimprove.verify._expr import Node, Rejected, has_inexact, parse, percent_alternatives, to_sympy

logger = logging.getLogger(__name__)

REL_TOL_INEXACT = 1e-9  # a decimal literal took part: relative tolerance of a float answer
REL_TOL_EXACT = 1e-40  # exact constants (pi, roots): equality to 40 digits at 60-digit precision
_PRECISION = 60
_POINTS = 4  # random points at which expressions with symbols must agree


# ---------------------------------------------------------------------------------------------------------
# the comparison (runs in the child)


def symbolic_equal(a_text: str, b_text: str) -> bool:
    """Whether two normalised answers are equal under sympy; False when either is outside the grammar."""
    try:
        a, b = parse(a_text), parse(b_text)
    except Rejected:
        return False
    for x, y in percent_alternatives(a, b):
        try:
            if _nodes_equal(x, y):
                return True
        except (Rejected, ArithmeticError, TypeError, ValueError):
            continue
    return False


def _nodes_equal(a: Node, b: Node) -> bool:
    if a[0] == "tuple" or b[0] == "tuple":
        return (
            a[0] == b[0] == "tuple"
            and a[1] == b[1]
            and a[3] == b[3]
            and len(a[2]) == len(b[2])
            and all(_nodes_equal(x, y) for x, y in zip(a[2], b[2], strict=True))
        )
    import sympy

    x, y = to_sympy(a), to_sympy(b)
    if x == y:
        return True
    # Equal functions agree at every point; a few random rational points (fixed seed) decide without
    # `expand`/`simplify`, whose cost explodes on inputs like (x+1)^9999 (Schwartz-Zippel for polynomials).
    symbols = sorted(x.free_symbols | y.free_symbols, key=str)
    rng = random.Random(0)
    points = [
        {s: sympy.Rational(rng.choice((-1, 1)) * rng.randint(1, 997), rng.randint(1, 89)) for s in symbols}
        for _ in range(_POINTS if symbols else 1)
    ]
    tol = REL_TOL_INEXACT if has_inexact(a) or has_inexact(b) else REL_TOL_EXACT
    for point in points:
        vx, vy = x.evalf(_PRECISION, subs=point), y.evalf(_PRECISION, subs=point)
        if not (vx.is_number and vy.is_number and vx.is_finite and vy.is_finite):
            return False
        if abs(vx - vy) > tol * max(abs(vx), abs(vy)):
            return False
    return True


class _RequestTimeout(BaseException):  # not an Exception: sympy code that catches those must not swallow it
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _RequestTimeout


def serve() -> None:
    """The child's loop: one JSON request per stdin line, one JSON answer per stdout line."""
    import signal

    import sympy  # noqa: F401  (imported before `ready` so that start-up cost is not charged to a request)

    has_timer = hasattr(signal, "setitimer")
    if has_timer:
        signal.signal(signal.SIGALRM, _on_alarm)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if has_timer:
            signal.setitimer(signal.ITIMER_REAL, float(request["seconds"]) + 1.0)
        try:
            equal: bool | None = symbolic_equal(request["a"], request["b"])
        except _RequestTimeout:
            equal = None
        except Exception:  # a sympy internal error on odd input is a "not equal", never a dead worker
            equal = False
        finally:
            if has_timer:
                signal.setitimer(signal.ITIMER_REAL, 0)
        print(json.dumps({"id": request["id"], "equal": equal}), flush=True)


# ---------------------------------------------------------------------------------------------------------
# the client (runs in the caller's process, from any thread)


def _read_lines(stream: IO[str], ready: threading.Event, responses: queue.Queue[str | None]) -> None:
    with stream:
        for line in stream:
            if line.strip() == "ready":
                ready.set()
            else:
                responses.put(line)
    responses.put(None)  # end of stream: the child died or was killed
    ready.set()  # wake a caller waiting for a start-up that will never finish


class SymbolicWorker:
    """A lazily started child process running `symbolic_equal`, shared by all threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._responses: queue.Queue[str | None] = queue.Queue()
        self._next_id = 0
        self._warned_starting = False

    def compare(self, a: str, b: str, deadline: float) -> bool | None:
        """True/False from sympy, or None when `deadline` (time.monotonic) passed first."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None
        try:
            if not self._start_locked():
                return None
            if not self._ready.wait(max(0.0, deadline - time.monotonic())):
                if not self._warned_starting:
                    logger.warning("the sympy worker is still starting; this comparison timed out")
                    self._warned_starting = True
                return None  # leave it starting: the next call will find it ready
            self._next_id += 1
            request_id = self._next_id
            request = {"id": request_id, "a": a, "b": b, "seconds": max(0.0, deadline - time.monotonic())}
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
            except OSError:
                self._kill_locked()
                return None
            while True:
                try:
                    line = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    self._kill_locked()  # stuck past the deadline: abandon it
                    return None
                if line is None:
                    logger.warning("the sympy worker exited (code %s); restarting it", self._proc.poll())
                    self._kill_locked()
                    return None
                response = json.loads(line)
                if response["id"] == request_id:
                    return None if response["equal"] is None else bool(response["equal"])
        finally:
            self._lock.release()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's worker, pipes and lock are the parent's; start afresh."""
        self._lock = threading.Lock()
        self._proc = None
        self._ready = threading.Event()
        self._responses = queue.Queue()

    def close(self) -> None:
        with self._lock:
            self._kill_locked()

    def _start_locked(self) -> bool:
        if self._proc is not None and self._proc.poll() is None:
            return True
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "selfimprove.verify._symbolic"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal is the parent's to handle
            )
        except OSError as err:
            logger.warning("cannot start the sympy worker (%s); symbolic comparisons answer False", err)
            return False
        self._proc = proc
        self._ready = threading.Event()
        self._responses = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(
            target=_read_lines, args=(proc.stdout, self._ready, self._responses), daemon=True
        ).start()
        return True

    def _kill_locked(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc = None  # its reader thread sees end of stream, closes stdout and exits


WORKER = SymbolicWorker()
atexit.register(WORKER.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WORKER.forget_after_fork)

if __name__ == "__main__":
    serve()
