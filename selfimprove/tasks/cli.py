"""`selfimprove tasks preview RECIPE`: print a few tasks of a recipe (question, solution, answer, steps)."""

from __future__ import annotations

import argparse

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from selfimprove.tasks.recipe import BUILTIN_RECIPES, format_prompt, load_recipe, load_tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    preview = actions.add_parser("preview", help="print a few tasks of a recipe")
    preview.add_argument(
        "recipe", metavar="RECIPE", help=f"a recipe TOML file or a built-in: {', '.join(BUILTIN_RECIPES)}"
    )
    preview.add_argument("--split", default="test", help="train, test (or val, for arith); default: test")
    preview.add_argument("--n", type=int, default=3, help="how many tasks (default: 3)")
    preview.add_argument("--steps", type=int, default=None, help="only tasks with this many steps")
    preview.add_argument(
        "--seed", type=int, default=None, help="generator / sampling seed (default: the recipe's)"
    )


def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    try:
        recipe = load_recipe(args.recipe)
        tasks = load_tasks(recipe, args.split, args.n, seed=args.seed, steps=args.steps)
    except ValueError as err:
        console.print(Text(f"error: {err}", style="bold red"))
        return 2
    console.print(
        Text(
            f"recipe {recipe.name} (source {recipe.source}, verifier {recipe.verifier}), split {args.split}: "
        )
        + Text(f"{len(tasks)} task(s)", style="bold")
    )
    for task in tasks:
        # Text objects, never markup strings: a question may contain "[...]", which rich would parse.
        body = Group(
            Text("prompt", style="bold cyan"),
            Text(format_prompt(recipe, task)),
            Text("gold solution", style="bold cyan"),
            Text(task.solution or "(none)"),
            Text.assemble(
                ("answer ", "bold cyan"),
                (task.answer, "bold green"),
                ("   steps ", "bold cyan"),
                str(task.steps),
            ),
        )
        console.print(Panel(body, title=Text(task.id), title_align="left"))
    return 0
