"""The tiny model's SFT step, side by side: 4 layers vs 3 (the `tiny` preset), and attention kernels.

Every variant runs `sft_warm_start` (the build's own training loop) for the same number of steps on the
same examples and batches (same seed), freshly initialised, in alternating rounds so that load on a
shared machine hits all of them alike. Prints tokens/s per variant and round, and each variant's total
relative to the first.

    python benchmarks/warm_start_step.py --steps 80 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from selfimprove.policy.tiny import PRESETS, _warm_start_tasks, make_model, train_tokenizer
from selfimprove.policy.warm_start import encode_examples, sft_warm_start
from selfimprove.tasks.recipe import format_prompt, load_recipe

# name: (num_layers, attention implementation, sdpa backend or None)
VARIANTS = {
    "4 layers (sessions 2-4)": (4, "sdpa", None),
    "3 layers (tiny)": (3, "sdpa", None),
    "4 layers, sdpa math kernel": (4, "sdpa", SDPBackend.MATH),
    "4 layers, eager attention": (4, "eager", None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80, help="optimizer steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--problems", type=int, default=6_000)
    args = parser.parse_args()

    base = dataclasses.replace(PRESETS["tiny"], train_problems=args.problems, optimizer_steps=args.steps)
    recipe = load_recipe("arith")
    tasks = _warm_start_tasks(base)
    prompts = [format_prompt(recipe, t) for t in tasks]
    solutions = [t.solution or "" for t in tasks]
    tokenizer = train_tokenizer([p + s for p, s in zip(prompts, solutions, strict=True)], base.vocab_size)
    examples = encode_examples(prompts, solutions, tokenizer)
    print(f"torch threads {torch.get_num_threads()}, {args.steps} steps of {base.batch_size} per run")

    totals = {name: [0, 0.0] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, (layers, attention, backend) in VARIANTS.items():
            config = dataclasses.replace(base, num_layers=layers)
            model = make_model(config, tokenizer, seed=config.seed)
            model.set_attn_implementation(attention)
            kernel = sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()
            with kernel:
                stats = sft_warm_start(model, examples, config, pad_id=tokenizer.pad_token_id)
            totals[name][0] += stats["tokens"]
            totals[name][1] += stats["seconds"]
            print(f"round {round_}  {name:<28} {stats['tokens_per_s']:>8,.0f} tokens/s")
    first_tokens, first_seconds = totals[next(iter(VARIANTS))]
    print()
    for name, (tokens, seconds) in totals.items():
        ratio = (tokens / seconds) / (first_tokens / first_seconds)
        print(f"{name:<28} {tokens / seconds:>8,.0f} tokens/s  {ratio:.2f}x")


if __name__ == "__main__":
    main()
