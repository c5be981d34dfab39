"""The learning proof: MCTS-DPO vs best-of-n DPO vs RFT at the same generation budget, over seeds.

Runs `selfimprove run` (the embedded default) once per method and seed, each method in its own run
folder, then evaluates the starting model and every run's final policy greedily on a large held-out
sample of the hard split (default 1,000 problems), the same problems for all. Writes a markdown table.

    python benchmarks/learning.py --seeds 0 1 --out runs/learning
    python benchmarks/learning.py --seeds 0 --methods mcts --iterations 1    # one quick look
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from selfimprove.eval.evaluate import evaluate
from selfimprove.loop.config import resolve_config
from selfimprove.loop.run import RunPaths, resolve_model_path, run_loop
from selfimprove.policy.hf import HFPolicy
from selfimprove.tasks.recipe import load_recipe

# overrides of the preset per method, as in configs/best_of_n_dpo.toml and configs/rft.toml
METHODS = {
    "mcts": {},
    "bon_dpo": {"search": {"type": "best_of_n", "n": 8, "max_pairs_per_task": 2}},
    "rft": {"search": {"type": "best_of_n", "n": 8}, "method": "rft", "train": {"lr": 1e-4}},
}


def _stderr(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", default=None, help="a run config TOML laid over the preset")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--n", type=int, default=1000, help="held-out hard problems for the final eval")
    parser.add_argument("--out", default="runs/learning")
    args = parser.parse_args()

    out = Path(args.out)
    results: dict[str, dict[int, dict]] = {}
    for seed in args.seeds:
        for method in args.methods:
            overrides = {**METHODS[method], "seed": seed, "name": method}
            if args.iterations is not None:
                overrides["iterations"] = args.iterations
            config = resolve_config(args.preset, args.config, overrides)
            run_dir = out / f"{method}-seed{seed}"
            start = time.perf_counter()
            run_loop(config, run_dir)
            results.setdefault(method, {})[seed] = {
                "run": str(run_dir),
                "seconds": time.perf_counter() - start,
            }

    # the same held-out hard problems for every policy
    first = next(iter(results.values()))
    run_dir = Path(next(iter(first.values()))["run"])
    config = resolve_config(args.preset, args.config, {"seed": args.seeds[0]})
    recipe = load_recipe(config.task.recipe)
    hard = recipe.hard_steps

    def hard_greedy(model_path: Path) -> float:
        policy = HFPolicy.from_pretrained(resolve_model_path(model_path))
        report = evaluate(policy, recipe, n=args.n, k=0, steps=[hard], seed=recipe.seed, max_new_tokens=256)
        return report.overall.greedy

    start_accuracy = hard_greedy(RunPaths(run_dir).model)
    lines = [
        f"Greedy accuracy on {args.n} held-out {hard}-step problems (± one standard error). "
        f"Start (warm-start model): {100 * start_accuracy:.1f} "
        f"± {100 * _stderr(start_accuracy, args.n):.1f}.",
        "",
        "| method | seed | final | gain | tokens generated | seconds |",
        "|---|---|---|---|---|---|",
    ]
    summary: dict[str, list[float]] = {}
    for method, by_seed in results.items():
        for seed, info in by_seed.items():
            paths = RunPaths(Path(info["run"]))
            k = resolve_config(args.preset, args.config, {**METHODS[method], "seed": seed}).iterations
            if args.iterations is not None:
                k = args.iterations
            final = hard_greedy(paths.policy(k))
            tokens = sum(
                json.loads(paths.marker(i, "search").read_text()).get("search/tokens", 0)
                for i in range(1, k + 1)
            )
            summary.setdefault(method, []).append(final)
            lines.append(
                f"| {method} | {seed} | {100 * final:.1f} ± {100 * _stderr(final, args.n):.1f} "
                f"| {100 * (final - start_accuracy):+.1f} | {tokens:,} | {info['seconds']:.0f} |"
            )
    lines += ["", "| method | mean final over seeds | mean gain |", "|---|---|---|"]
    for method, finals in summary.items():
        mean = sum(finals) / len(finals)
        lines.append(f"| {method} | {100 * mean:.1f} | {100 * (mean - start_accuracy):+.1f} |")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
