"""Benchmark: selfimprove's math verifier against math-verify on GSM8K's labelled example model solutions.

Data: `example_model_solutions.jsonl` of openai/grade-school-math (Cobbe et al., 2021): 1,319 test questions,
each with a reference solution and four model solutions labelled `is_correct` by the authors (5,276 in all).
Both verifiers judge the same pairs in one run, in the main thread (math-verify's timeouts use signals), and
we report agreement with the labels, checks per second and the speed ratio (ours / math-verify's):

- `end-to-end`: each tool reads the raw solution texts itself (ours: extract_answer + is_equivalent on
  both texts; math-verify: parse both + verify);
- `compare-only`: both compare the same extracted answer strings (ours from extract_answer), which
  isolates equivalence from extraction; caches are cleared before each pass, so repeated (pred, gold)
  pairs inside a pass may hit either tool's cache, as they would in a search;
- `compare-only, cold`: the same with every cache cleared before every single check.

Run: `python benchmarks/verifier.py [--data PATH] [--repeats N]` (needs the benchmark extra: math-verify).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from selfimprove.verify.math import clear_cache, extract_answer, is_equivalent

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/gsm8k/example_model_solutions.jsonl"


def load(path: Path) -> list[tuple[str, str, bool]]:
    """(model solution, reference solution, is_correct) for every labelled solution in the file."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rows.extend((row[m]["solution"], row["ground_truth"], bool(row[m]["is_correct"])) for m in MODELS)
    return rows


def timed(
    judge: Callable[[str, str], bool], pairs: list[tuple[str, str]], reset: Callable[[], None], cold: bool
) -> tuple[list[bool], float]:
    """(verdicts, seconds) of one pass over `pairs`; caches cleared first, or before every check if `cold`."""
    reset()
    start = time.perf_counter()
    if cold:
        verdicts = []
        for pred, gold in pairs:
            reset()
            verdicts.append(judge(pred, gold))
    else:
        verdicts = [judge(pred, gold) for pred, gold in pairs]
    return verdicts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per tool; report the median")
    args = parser.parse_args()

    from math_verify import parse, verify
    from math_verify import parser as mv_parser

    def reset_math_verify() -> None:
        mv_parser.parse_latex_cached.cache_clear()
        mv_parser.parse_expr_cached.cache_clear()

    def ours_end_to_end(solution: str, reference: str) -> bool:
        pred, gold = extract_answer(solution), extract_answer(reference)
        return pred is not None and gold is not None and is_equivalent(pred, gold)

    def math_verify_judge(pred: str, gold: str) -> bool:
        return bool(verify(parse(gold), parse(pred)))

    # ---------------------------------------------------------------------------------------------------
    rows = load(args.data)
    labels = [label for _, _, label in rows]
    raw = [(solution, reference) for solution, reference, _ in rows]
    extracted = [(extract_answer(s) or "", extract_answer(r) or "") for s, r in raw]
    print(f"{len(rows)} labelled solutions from {args.data} ({sum(labels)} labelled correct)\n")

    # (mode, pairs, cold, our judge): math-verify judges the same pairs with parse + verify
    modes = [
        ("end-to-end", raw, False, ours_end_to_end),
        ("compare-only", extracted, False, is_equivalent),
        ("compare-only, cold", extracted, True, is_equivalent),
    ]
    tools = [("selfimprove", clear_cache), ("math-verify", reset_math_verify)]
    print("| pairs | verifier | agreement with labels | disagreements | checks/s (median) | speed ratio |")
    print("|---|---|---|---|---|---|")
    examples = []
    for mode, pairs, cold, ours in modes:
        rates, results = {}, {}
        for name, reset in tools:
            judge = ours if name == "selfimprove" else math_verify_judge
            seconds = []
            for _ in range(args.repeats):
                verdicts, elapsed = timed(judge, pairs, reset, cold)
                seconds.append(elapsed)
            rates[name] = len(pairs) / statistics.median(seconds)
            results[name] = verdicts
        for name, _ in tools:
            wrong = [i for i, (v, label) in enumerate(zip(results[name], labels, strict=True)) if v != label]
            agree = len(labels) - len(wrong)
            ratio = rates[name] / rates["math-verify"]
            print(
                f"| {mode} | {name} | {agree}/{len(labels)} = {agree / len(labels):.2%} | {len(wrong)} | "
                f"{rates[name]:,.0f} | {ratio:.1f}x |"
            )
            examples += [(mode, name, labels[i], pairs[i][0][-60:], pairs[i][1][-30:]) for i in wrong[:5]]
    for mode, name, label, pred, gold in examples:
        print(f"{mode}: {name} disagrees with label={label}: pred ...{pred!r} gold ...{gold!r}")


if __name__ == "__main__":
    main()
