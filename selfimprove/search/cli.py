"""`selfimprove search`: run a search recipe over training tasks and write trees and pairs.jsonl."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--search", default="searches/mcts.toml", help="search recipe (TOML) or mcts / best_of_n"
    )
    parser.add_argument("--task", default="arith", help="task recipe (TOML) or a built-in name")
    parser.add_argument(
        "--model", default="tiny", help="a local HF model folder, or a tiny-model preset name"
    )
    parser.add_argument("--tasks", type=int, default=64, help="how many training tasks to search")
    parser.add_argument("--steps", type=int, default=None, help="only tasks with this many steps")
    parser.add_argument(
        "--token-budget", type=int, default=None, help="stop after this many generated tokens"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from selfimprove.policy.hf import HFPolicy
    from selfimprove.policy.tiny import PRESETS, build_tiny_model
    from selfimprove.search.output import write_search_result
    from selfimprove.search.recipe import load_search
    from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks
    from selfimprove.verify.registry import make_verifier

    console = Console()
    search = load_search(args.search)
    recipe = load_recipe(args.task)
    tasks = load_tasks(recipe, "train", args.tasks, seed=args.seed, steps=args.steps)
    model_path = build_tiny_model(args.model) if args.model in PRESETS else Path(args.model)
    policy = HFPolicy.from_pretrained(model_path)
    with Progress(
        TextColumn(f"[bold]{search.name}[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} trees"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        job = bar.add_task("search", total=len(tasks), info="")

        def progress(done: int, total: int, stats: dict[str, float]) -> None:
            info = (
                f"{stats['search/nodes']:,} nodes  {stats['search/solved']} solved  "
                f"{stats['search/tokens_per_s']:,.0f} tok/s"
            )
            bar.update(job, completed=done, total=total, info=info)

        result = search.run(
            policy,
            make_verifier(recipe.verifier),
            tasks,
            lambda task: format_prompt(recipe, task),
            seed=args.seed,
            token_budget=args.token_budget,
            progress=progress,
        )
    write_search_result(result, args.out)
    console.print(json.dumps(result.stats, indent=2))
    console.print(f"{len(result.pairs)} pairs -> {Path(args.out) / 'pairs.jsonl'}")
    return 0
