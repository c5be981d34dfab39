"""Speed of the task suites: generating arith problems (the embedded default's SFT data) and loading GSM8K.

python benchmarks/tasks_generate.py [--n 50000] [--gsm8k ../shared/data/gsm8k/test.jsonl]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selfimprove.tasks.arith import MAX_STEPS, generate_tasks
from selfimprove.tasks.gsm8k import load_gsm8k

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """fn's result, wall seconds and CPU seconds (CPU time is the fairer number on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="training problems to generate")
    parser.add_argument("--per-step", type=int, default=1_000, help="held-out problems per step count")
    parser.add_argument(
        "--gsm8k", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/gsm8k/test.jsonl"
    )
    args = parser.parse_args()

    tasks, wall, cpu = _timed(lambda: generate_tasks("train", args.n, seed=0))
    print(
        f"arith train, 1-4 steps: {len(tasks)} problems in {wall:.2f} s wall / {cpu:.2f} s CPU "
        f"({len(tasks) / cpu:,.0f} problems per CPU second)"
    )
    for k in range(1, MAX_STEPS + 1):
        held, wall, cpu = _timed(lambda k=k: generate_tasks("test", args.per_step, seed=0, steps=k))
        print(f"arith test, {k} steps: {len(held)} problems in {wall:.2f} s wall / {cpu:.2f} s CPU")
    if args.gsm8k.is_file():
        rows, wall, cpu = _timed(lambda: load_gsm8k(args.gsm8k))
        print(f"gsm8k load {args.gsm8k.name}: {len(rows)} rows in {wall:.3f} s wall / {cpu:.3f} s CPU")


if __name__ == "__main__":
    main()
