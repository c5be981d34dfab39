"""`selfimprove model build`: build (or reuse from cache) the embedded tiny model."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser(
        "build", help="train the tokenizer and warm-start the tiny Llama (cached by config hash)"
    )
    build.add_argument(
        "--preset", default="tiny", help="tiny (the embedded default) or test (seconds, for tests)"
    )
    build.add_argument(
        "--cache-dir", default=None, help="default: $SELFIMPROVE_CACHE or ~/.cache/selfimprove"
    )


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from selfimprove.policy.tiny import build_tiny_model

    console = Console()
    with Progress(
        TextColumn("[bold]warm start[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("sft", total=None, info="")

        def progress(step: int, total: int, metrics: dict[str, float]) -> None:
            info = f"loss {metrics['loss']:.3f}  {metrics['tokens_per_s']:,.0f} tok/s"
            bar.update(task, completed=step, total=total, info=info)

        path = build_tiny_model(args.preset, cache_dir=args.cache_dir, progress=progress)
    info = json.loads((path / "build_info.json").read_text())
    console.print(
        f"model: {path}\n{info['parameters']:,} parameters, vocabulary {info['vocab']}, "
        f"{info['config']['optimizer_steps']} SFT steps, final loss {info['final_loss']:.3f}, "
        f"{info['tokens_per_s']:,.0f} tokens/s, {info['seconds']:.0f} s"
    )
    return 0
