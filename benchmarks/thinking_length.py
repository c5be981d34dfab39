"""Benchmark: the tokens the PRefLexOR thinking warm-start data costs the tiny model, and how fast it is made.

For `--tasks` generated arith problems (train split, 1-4 steps, as the tiny warm start uses), side by side:

- `plain`: prompt + the GSM8K-format solution (what the tiny warm start trains on today);
- `thinking`: prompt + the round-0 thinking completion (Concepts, Example, Known, Plan, then the solution);
- `reflection`: prompt + wrong attempt + "\\n", then reflection + refined round (the `--reflect` share).

Token counts use the tiny model's own tokenizer recipe (`selfimprove.policy.tiny.train_tokenizer`, vocabulary
720) trained twice: on plain text only (the tokenizer the tiny build trains today) and on text that includes
the thinking data (what it would train if the warm start includes thinking). The tiny model has 512
positions; reflection examples longer than `thinking_data.MAX_REFLECT_CHARS` characters fall back to plain
thinking examples, and the table counts them.

Run: `python benchmarks/thinking_length.py [--tasks 3000] [--reflect 0.3] [--seed 0]`
"""

from __future__ import annotations

import argparse
import statistics
import time

from selfimprove.knowledge import KnowledgeGraph, thinking_examples, thinking_solution
from selfimprove.policy.tiny import train_tokenizer
from selfimprove.tasks.arith import generate_tasks
from selfimprove.tasks.recipe import format_prompt, load_recipe


def _stats(values: list[int]) -> str:
    if not values:
        return "        -"
    return f"{statistics.mean(values):7.1f} {max(values):5d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--reflect", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    recipe = load_recipe("arith")
    tasks = generate_tasks("train", args.tasks, seed=args.seed, min_steps=1, max_steps=4)
    prompts = [format_prompt(recipe, t) for t in tasks]

    start = time.perf_counter()
    graph = KnowledgeGraph.build(tasks)
    built = time.perf_counter() - start
    start = time.perf_counter()
    examples = thinking_examples(tasks, prompts, graph, reflect_fraction=args.reflect, seed=args.seed)
    made = time.perf_counter() - start
    print(f"graph build: {built:.2f} s for {len(tasks)} tasks ({1000 * built / len(tasks):.2f} ms/task)")
    print(f"thinking_examples: {made:.2f} s ({1000 * made / len(tasks):.2f} ms/task)")

    thinking = [thinking_solution(t, graph) for t in tasks]
    reflective = [i for i, ((p, _), q) in enumerate(zip(examples, prompts, strict=True)) if p != q]
    print(f"reflection examples: {len(reflective)} of {len(tasks)} at reflect_fraction {args.reflect}")

    half = len(tasks) // 2  # tokenizers train on the first half, lengths are measured on all
    corpora = {
        "plain-trained": [p + (t.solution or "") for p, t in zip(prompts[:half], tasks, strict=False)],
        "thinking-trained": [p + c for p, c in examples[:half]],
    }
    for name, corpus in corpora.items():
        tokenizer = train_tokenizer(corpus, 720)

        def n_tokens(text: str, tokenizer=tokenizer) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        prompt_len = [n_tokens(p) for p in prompts]
        plain = [n_tokens(t.solution or "") for t in tasks]
        think = [n_tokens(c) for c in thinking]
        print(f"\n{name} tokenizer ({len(tokenizer)} tokens)")
        print("                                    mean   max")
        print(f"prompt                           {_stats(prompt_len)}")
        print(f"plain completion                 {_stats(plain)}")
        print(f"thinking completion              {_stats(think)}")
        increase = statistics.mean(think) - statistics.mean(plain)
        ratio = statistics.mean(think) / statistics.mean(plain)
        print(f"  increase over plain: {increase:+.1f} tokens per completion (x{ratio:.2f})")
        for steps in (1, 2, 3, 4):
            idx = [i for i, t in enumerate(tasks) if t.steps == steps]
            total = [prompt_len[i] + think[i] for i in idx]
            refl = [
                n_tokens(examples[i][0]) + n_tokens(examples[i][1])
                for i in reflective
                if tasks[i].steps == steps
            ]
            print(
                f"  {steps}-step: thinking prompt+completion {_stats(total)} | "
                f"reflection prompt+completion {_stats(refl)} (n={len(refl)})"
            )
        plain_total = [a + b for a, b in zip(prompt_len, plain, strict=True)]
        mix_total = [n_tokens(p) + n_tokens(c) for p, c in examples]
        print(
            f"  warm-start example (prompt + completion): plain {statistics.mean(plain_total):.1f}, "
            f"thinking mix {statistics.mean(mix_total):.1f} tokens "
            f"(x{statistics.mean(mix_total) / statistics.mean(plain_total):.2f}); max {max(mix_total)}"
        )
        chars = sum(len(examples[i][0]) + len(examples[i][1]) for i in reflective)
        tokens = sum(n_tokens(examples[i][0]) + n_tokens(examples[i][1]) for i in reflective)
        print(f"  characters per token in reflection examples: {chars / max(tokens, 1):.2f}")


if __name__ == "__main__":
    main()
