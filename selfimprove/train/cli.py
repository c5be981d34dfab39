"""`selfimprove train`: preference-train a model on pairs.jsonl and save it (safetensors) with its state.

    selfimprove train --pairs pairs.jsonl --model PATH --out DIR [--loss sigmoid --beta 0.1 --ref PATH ...]

Options left out keep TrainConfig's defaults; the resolved config is in DIR/trainer_state.json and the
command line in DIR/train_command.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selfimprove.train.config import DEVICES, DTYPES, PREFERENCE_LOSSES, SHARE_PROMPT_MODES

# (flag, TrainConfig field, type, help); None defaults mean "TrainConfig's default"
_OPTIONS: list[tuple[str, str, type, str]] = [
    ("--beta", "beta", float, "strength of the implicit KL penalty (IPO: tau); default 0.1"),
    (
        "--label-smoothing",
        "label_smoothing",
        float,
        "sigmoid: conservative-DPO epsilon; robust: label-flip rate",
    ),
    ("--rpo-alpha", "rpo_alpha", float, "weight of the per-token NLL on chosen for --loss rpo; default 1.0"),
    ("--orpo-lambda", "orpo_lambda", float, "weight of the odds-ratio term for --loss orpo; default 0.1"),
    ("--lr", "lr", float, "peak learning rate; default 1e-5"),
    ("--epochs", "epochs", int, "passes over the pairs; default 1"),
    ("--batch-size", "batch_size", int, "pairs per forward pass; default 16"),
    ("--grad-accum", "grad_accum", int, "micro-batches per optimizer step; default 1"),
    ("--warmup-frac", "warmup_frac", float, "fraction of steps of linear warm-up; default 0.03"),
    ("--min-lr-frac", "min_lr_frac", float, "cosine decays to this fraction of lr; default 0.1"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay on matrices; default 0"),
    ("--max-grad-norm", "max_grad_norm", float, "clip the global gradient norm; default 1.0"),
    (
        "--max-length",
        "max_length",
        int,
        "prompt + completion tokens (prompt cut from the left); default 1024",
    ),
    ("--seed", "seed", int, "data order and LoRA init; default 0"),
    ("--lora-r", "lora_r", int, "LoRA rank (with --lora); default 8"),
    ("--lora-alpha", "lora_alpha", float, "LoRA alpha (with --lora); default 16"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", required=True, type=Path, help="pairs.jsonl (prompt, chosen, rejected per line)"
    )
    parser.add_argument("--model", required=True, type=Path, help="model folder (save_pretrained format)")
    parser.add_argument(
        "--out", required=True, type=Path, help="folder for the trained model and trainer_state.json"
    )
    parser.add_argument(
        "--ref", type=Path, default=None, help="fixed reference model (default: the --model itself)"
    )
    parser.add_argument("--loss", choices=PREFERENCE_LOSSES, default=None, help="default sigmoid (DPO)")
    for flag, _, kind, help_text in _OPTIONS:
        parser.add_argument(flag, type=kind, default=None, help=help_text)
    parser.add_argument("--share-prompt", choices=SHARE_PROMPT_MODES, default=None, help="default auto")
    parser.add_argument(
        "--mask-span",
        nargs=3,
        action="append",
        metavar=("OPEN", "CLOSE", "WEIGHT"),
        help="weigh completion tokens between OPEN and CLOSE by WEIGHT (0 masks them); repeatable",
    )
    parser.add_argument(
        "--lora", action="store_true", help="train LoRA adapters (peft) and merge them at the end"
    )
    parser.add_argument("--device", choices=DEVICES, default=None, help="default auto (cuda when available)")
    parser.add_argument(
        "--dtype", choices=DTYPES, default=None, help="default auto (fp32 CPU, bf16 autocast GPU)"
    )


def main(args: argparse.Namespace) -> int:
    from selfimprove.io import atomic_write_json
    from selfimprove.records import read_pairs
    from selfimprove.train.config import TrainConfig

    # --- inputs, checked before anything heavy is imported --------------------------------------------------
    overrides = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _, _ in _OPTIONS}
    overrides.update(
        {"loss": args.loss, "share_prompt": args.share_prompt, "device": args.device, "dtype": args.dtype}
    )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.lora:
        overrides["lora"] = True
    if args.mask_span:
        overrides["mask_spans"] = [(o, c, w) for o, c, w in args.mask_span]
    try:
        config = TrainConfig(**overrides)
        if not args.pairs.is_file():
            raise ValueError(f"{args.pairs}: no such pairs file")
        pairs = read_pairs(args.pairs)
        if not pairs:
            raise ValueError(f"{args.pairs}: no pairs in the file")
        for path, what in ((args.model, "--model"), (args.ref, "--ref")):
            if path is not None and not (path / "config.json").is_file():
                raise ValueError(f"{what} {path} is not a model folder (no config.json)")
    except ValueError as err:
        print(f"selfimprove train: error: {err}", file=sys.stderr)
        return 2

    # --- model and training ---------------------------------------------------------------------------------
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.train.trainer import train_preference

    console = Console()
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    console.print(
        f"{len(pairs)} pairs from {args.pairs}; model {args.model}; loss {config.loss}, beta {config.beta}"
    )
    with Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=None, info="")

        def progress(step: int, total: int, metrics: dict[str, float]) -> None:
            info = (
                f"loss {metrics['train/loss']:.4f}  acc {metrics['rewards/accuracy']:.2f}  "
                f"margin {metrics['rewards/margin']:.3f}"
            )
            bar.update(task, completed=step, total=total, info=info)

        try:
            result = train_preference(
                model, tokenizer, pairs, config, out_dir=args.out, reference=args.ref, progress=progress
            )
        except ValueError as err:
            console.print(f"[red]selfimprove train: error: {err}[/]")
            return 2
    atomic_write_json(
        args.out / "train_command.json",
        {"argv": sys.argv, "args": {k: str(v) for k, v in vars(args).items()}},
    )

    table = Table(title=f"after {result.steps} steps")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.final.items():
        table.add_row(key, f"{value:.6g}")
    table.add_row("tokens", f"{result.tokens:,}")
    table.add_row("tokens/s", f"{result.tokens_per_second:,.0f}")
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)
    console.print(f"saved to {args.out}")
    return 0
