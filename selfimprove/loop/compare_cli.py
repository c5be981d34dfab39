"""`selfimprove compare RUN...`: several runs' held-out accuracy in one table and one plot."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders")
    parser.add_argument("--out", default="compare.png", help="where to write the plot (PNG)")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from selfimprove.loop.report import compare_table, load_run, plot_accuracy

    console = Console()
    runs = [load_run(path) for path in args.runs]
    hard = runs[0].hard_steps
    console.print("\n".join(compare_table(runs)))
    plot_accuracy(runs, Path(args.out), steps=hard, title=f"{hard}-step held-out, greedy")
    console.print(f"plot: {args.out}")
    return 0
