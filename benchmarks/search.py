"""Lockstep MCTS vs a naive one-leaf-at-a-time MCTS at batch 1, side by side in one run.

Same model, same tasks, same simulations per problem. The naive search is the same algorithm with
trees_per_batch = 1, leaves_per_tree = 1, and every generate call split into batch-1 calls (one prompt,
one sample at a time), which is how a straightforward implementation runs. Also reports pairs per 1,000
generated tokens for MCTS vs best-of-n.

    python benchmarks/search.py --tasks 16 --simulations 16
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from selfimprove.policy.hf import HFPolicy
from selfimprove.policy.tiny import build_tiny_model
from selfimprove.search.best_of_n import BestOfN, BestOfNConfig
from selfimprove.search.mcts import MCTS, MCTSConfig
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks
from selfimprove.verify.registry import make_verifier


class BatchOnePolicy:
    """The same policy, asked one prompt and one sample per call."""

    def __init__(self, policy: HFPolicy) -> None:
        self.policy = policy

    def generate(self, prompts, *, n=1, seed=None, **kwargs):
        out = []
        for i, prompt in enumerate(prompts):
            group = []
            for j in range(n):
                call_seed = None if seed is None else seed * 7_919 + i * 97 + j
                group.extend(self.policy.generate([prompt], n=1, seed=call_seed, **kwargs)[0])
            out.append(group)
        return out

    def logprobs(self, prompts, completions):
        return [self.policy.logprobs([p], [c])[0] for p, c in zip(prompts, completions, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--simulations", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    policy = HFPolicy.from_pretrained(build_tiny_model(args.preset))
    recipe = load_recipe("arith")
    tasks = load_tasks(recipe, "train", args.tasks, seed=args.seed, steps=args.steps)
    verifier = make_verifier(recipe.verifier)
    prompt_fn = lambda task: format_prompt(recipe, task)  # noqa: E731
    config = MCTSConfig(simulations=args.simulations, trees_per_batch=args.tasks, leaves_per_tree=2)
    naive_config = dataclasses.replace(config, trees_per_batch=1, leaves_per_tree=1)

    rows = []
    for name, search, pol in (
        ("lockstep MCTS", MCTS(config), policy),
        ("naive MCTS (batch 1)", MCTS(naive_config), BatchOnePolicy(policy)),
    ):
        start = time.perf_counter()
        result = search.run(pol, verifier, tasks, prompt_fn, seed=args.seed)
        seconds = time.perf_counter() - start
        rows.append((name, result, seconds))

    bon = BestOfN(BestOfNConfig(n=8, trees_per_batch=args.tasks)).run(
        policy, verifier, tasks, prompt_fn, seed=args.seed
    )

    print(
        f"{args.tasks} tasks of {args.steps} steps, {args.simulations} simulations each, preset {args.preset}"
    )
    print("| search | nodes | tokens | seconds | nodes/s | tokens/s | pairs | pairs per 1k tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result, seconds in rows:
        nodes, tokens, pairs = result.stats["search/nodes"], result.stats["search/tokens"], len(result.pairs)
        print(
            f"| {name} | {nodes} | {tokens} | {seconds:.1f} | {nodes / seconds:.1f} | {tokens / seconds:.0f} "
            f"| {pairs} | {1000 * pairs / tokens:.2f} |"
        )
    bon_tokens, bon_seconds, bon_pairs = (
        bon.stats["search/tokens"],
        bon.stats["search/seconds"],
        len(bon.pairs),
    )
    print(
        f"| best-of-8 | {bon.stats['search/nodes']} | {bon_tokens} | {bon_seconds:.1f} | – "
        f"| {bon_tokens / bon_seconds:.0f} | {bon_pairs} | {1000 * bon_pairs / bon_tokens:.2f} |"
    )
    (_, fast, fast_s), (_, slow, slow_s) = rows
    node_ratio = (fast.stats["search/nodes"] / fast_s) / (slow.stats["search/nodes"] / slow_s)
    token_ratio = (fast.stats["search/tokens"] / fast_s) / (slow.stats["search/tokens"] / slow_s)
    print(f"\nlockstep / naive: nodes/s x{node_ratio:.1f}, tokens/s x{token_ratio:.1f}")


if __name__ == "__main__":
    main()
