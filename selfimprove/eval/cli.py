"""`selfimprove eval`: greedy accuracy, maj@k and pass@k of a model on a task recipe, as a table and JSON."""

from __future__ import annotations

import argparse


def _step_list(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--steps takes integers separated by commas, got {text!r}"
        ) from None
    if not steps:
        raise argparse.ArgumentTypeError(f"--steps needs at least one step count, got {text!r}")
    return steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="folder of a save_pretrained causal LM + tokenizer")
    parser.add_argument("--task", required=True, help="task recipe: a built-in name (arith) or a TOML file")
    parser.add_argument("--n", type=int, default=500, help="held-out tasks per step count (default 500)")
    parser.add_argument("--k", type=int, default=8, help="samples per task for maj@k and pass@k; 0 skips")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="per completion (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="picks the held-out tasks and the samples")
    parser.add_argument(
        "--steps", type=_step_list, default=None, help="step counts, e.g. 1,2,3 (default: recipe)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="rows per forward (default: fit memory)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument(
        "--out", default="eval.json", help="where to write the JSON report (default eval.json)"
    )


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from selfimprove.eval.evaluate import evaluate
    from selfimprove.io import atomic_write_json
    from selfimprove.policy.hf import HFPolicy
    from selfimprove.tasks.recipe import load_recipe

    console = Console()
    try:
        recipe = load_recipe(args.task)
        policy = HFPolicy.from_pretrained(args.model, device=args.device, batch_size=args.batch_size)
    except ValueError as err:
        console.print(f"[red]error:[/] {err}")
        return 2
    with Progress(
        TextColumn("[bold]eval[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} completions"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        job = bar.add_task("eval", total=None)
        report = evaluate(
            policy,
            recipe,
            n=args.n,
            k=args.k,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            steps=args.steps,
            progress=lambda done, total, _: bar.update(job, completed=done, total=total),
        )

    sampled = report.k > 0
    table = Table(title=f"{report.recipe}: {args.model}")
    table.add_column("steps", justify="right")
    table.add_column("n", justify="right")
    table.add_column("greedy", justify="right")
    if sampled:
        table.add_column(f"maj@{report.k}", justify="right")
        table.add_column(f"pass@{report.k}", justify="right")
        table.add_column("pass@1", justify="right")
    for group in (*report.by_steps, report.overall):
        cells = [str(group.steps) if group.steps is not None else "all", str(group.n), f"{group.greedy:.1%}"]
        if sampled:
            cells += [f"{group.maj_at_k:.1%}", f"{group.pass_at_k:.1%}", f"{group.pass_at_1:.1%}"]
        table.add_row(*cells, end_section=group is report.by_steps[-1])
    console.print(table)
    console.print(
        f"{report.tokens:,} tokens generated in {report.seconds:.1f} s "
        f"({report.tokens / max(report.seconds, 1e-9):,.0f} tokens/s); "
        f"k={report.k}, T={report.temperature}, top-p={report.top_p}, seed={report.seed}"
    )
    atomic_write_json(args.out, report.to_dict())
    console.print(f"wrote {args.out}")
    return 0
