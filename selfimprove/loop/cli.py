"""`selfimprove run`: the iterative self-improvement loop; with no arguments, the embedded default."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfimprove.loop.config import RunConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", help="default (tiny model, ~30 min) or smoke (~3 min)")
    parser.add_argument("--config", default=None, help="a run config TOML laid over the preset")
    parser.add_argument("--task", default=None, help="task recipe (TOML path or built-in name)")
    parser.add_argument("--search", default=None, help="search recipe (TOML path, or mcts / best_of_n)")
    parser.add_argument(
        "--method", default=None, choices=("dpo", "rft"), help="train on pairs or on correct samples"
    )
    parser.add_argument(
        "--model", default=None, help="a local Hugging Face causal LM folder (default: tiny model)"
    )
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default=None, help="run folder (default: runs/<name>-seed<seed>)")
    parser.add_argument("--compare", nargs="*", default=[], help="baseline run folders to plot in the report")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from selfimprove.config import read_toml

    overrides: dict[str, Any] = {}
    for key in ("method", "iterations", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.task is not None:
        overrides["task"] = {"recipe": args.task}
    if args.model is not None:
        overrides["model"] = {"path": str(Path(args.model).resolve())}
    if args.search is not None:
        overrides["search"] = (
            {"type": args.search} if args.search in ("mcts", "best_of_n") else read_toml(args.search)
        )
    return overrides


def resolve_run_config(args: argparse.Namespace) -> RunConfig:
    """The run's config from the CLI. `--search` or `--method` changes what the run does, so the run is named
    after them (`default-best_of_n-rft`): a baseline run from the same config gets its own folder instead
    of the MCTS run's, which would refuse a different config on resume."""
    from selfimprove.loop.config import resolve_config

    config = resolve_config(args.preset, args.config, _overrides(args))
    suffix = [Path(args.search).stem] if args.search is not None else []
    suffix += [args.method] if args.method is not None else []
    return dataclasses.replace(config, name="-".join([config.name, *suffix])) if suffix else config


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from selfimprove.loop.report import by_steps, compare_table, load_run, write_report
    from selfimprove.loop.run import run_loop

    console = Console()
    config = resolve_run_config(args)
    out = Path(args.out or f"runs/{config.name}-seed{config.seed}")
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("selfimprove").addHandler(handler)
    logging.getLogger("selfimprove").setLevel(logging.INFO)

    console.print(
        f"[bold]selfimprove run[/] {config.name}: search {config.search['type']}, method {config.method}, "
        f"{config.iterations} iterations, {config.token_budget:,} tokens per search -> {out}"
    )
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        jobs: dict[tuple[str, int], Any] = {}

        def progress(phase: str, k: int, done: int, total: int, info: dict[str, Any]) -> None:
            key = (phase, k)
            if key not in jobs:
                jobs[key] = bar.add_task(f"iter {k}/{config.iterations} {phase}", total=None, info="")
            if phase == "search":
                text = (
                    f"{info.get('search/trees', 0)} trees  {info.get('search/nodes', 0):,} nodes  "
                    f"{info.get('search/tokens', 0):,} tokens"
                )
            elif phase == "train":
                text = f"step {done}/{total}  loss {info.get('train/loss', float('nan')):.4f}"
            else:
                text = f"{done}/{total} problems" if total else ""
            bar.update(jobs[key], completed=min(done, total) if total else 0, total=total or None, info=text)

        run_loop(config, out, progress=progress)
    if args.compare:
        write_report(out, args.compare)

    run = load_run(out)
    table = Table(title=f"held-out accuracy ({time.perf_counter() - started:.0f} s)")
    for column in ("iter", "greedy", f"greedy {run.hard_steps}-step", "maj@k", "pass@k", "pairs", "tokens"):
        table.add_column(column, justify="right")
    for row in run.rows:
        if row.evaluation is None:
            continue
        overall = row.evaluation["overall"]
        hard = by_steps(row.evaluation).get(run.hard_steps)
        search = row.search or {}
        table.add_row(
            str(row.iteration),
            f"{100 * overall['greedy']:.1f}",
            f"{100 * hard['greedy']:.1f}" if hard else "–",
            f"{100 * overall['maj_at_k']:.1f}" if overall["maj_at_k"] is not None else "–",
            f"{100 * overall['pass_at_k']:.1f}" if overall["pass_at_k"] is not None else "–",
            str(search.get("search/pairs", "–")),
            f"{search.get('search/tokens', 0):,}",
        )
    console.print(table)
    if args.compare:
        console.print("\n".join(compare_table([run, *[load_run(c) for c in args.compare]])))
    console.print(f"report: {out / 'report.md'}")
    return 0
