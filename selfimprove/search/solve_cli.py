"""`selfimprove solve`: one question through PRefLexOR's recursive thinking, shown round by round.

n chains think and answer (round 0), then reflect on their previous round and refine it (rounds 1..R-1).
Every round of every chain is shown: reflection, thinking, answer and, given `--answer`, the verifier's
verdict. The final answer is the self-consistency vote (Wang et al. 2022, arXiv:2203.11171) over the
chains' last rounds. All rounds run here, verified or not: refinement stops early only in training.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a local HF model folder, or a tiny-model preset name")
    parser.add_argument("--question", required=True, help="the question to answer")
    parser.add_argument("--answer", default=None, help="the gold answer: every round is verified against it")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per chain, round 0 included")
    parser.add_argument("--n", type=int, default=8, help="chains (round-0 samples) voting on the answer")
    parser.add_argument(
        "--kg", default=None, help="knowledge graph (node-link JSON) to retrieve concepts from"
    )
    parser.add_argument(
        "--task", default="arith", help="task recipe (TOML) or built-in name: prompt, verifier"
    )
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-tokens", type=int, default=640, help="generated tokens per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="also write the chains as a tree JSON (for selfimprove viz)"
    )


def main(args: argparse.Namespace) -> int:
    from rich.console import Console, Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from selfimprove.eval.metrics import majority_vote
    from selfimprove.io import atomic_write_json
    from selfimprove.knowledge import KnowledgeGraph
    from selfimprove.policy.hf import HFPolicy
    from selfimprove.policy.tiny import PRESETS, build_tiny_model
    from selfimprove.search.accounting import Counter
    from selfimprove.search.preflexor import PRefLexORConfig, RefinementTree, generate_rounds
    from selfimprove.tasks.recipe import format_prompt, load_recipe
    from selfimprove.tasks.task import Task
    from selfimprove.tasks.thinking import THINKING_OPEN
    from selfimprove.verify.math import extract_answer, is_equivalent
    from selfimprove.verify.registry import make_verifier

    console = Console(highlight=False)
    try:
        config = PRefLexORConfig(
            rounds=args.rounds,
            n=args.n,
            temperature=args.temperature,
            max_round_tokens=args.max_tokens,
            early_stop=False,
        )
    except ValueError as err:
        console.print(f"selfimprove solve: error: {err}", style="red", markup=False)
        return 2
    recipe = load_recipe(args.task)
    task = Task(id="question", question=args.question, answer="" if args.answer is None else args.answer)
    verifier = make_verifier(recipe.verifier) if args.answer is not None else None
    retrieval = KnowledgeGraph.load(args.kg).retrieve(args.question) if args.kg else None
    head = THINKING_OPEN + "\n" + (retrieval.thinking_prefix() if retrieval is not None else "")
    tree = RefinementTree(task, format_prompt(recipe, task), head, retrieval)
    model_path = build_tiny_model(args.model) if args.model in PRESETS else Path(args.model)
    policy = HFPolicy.from_pretrained(model_path)
    counter = Counter()
    with console.status(f"{args.n} chains x {args.rounds} rounds ..."):
        generate_rounds(policy, [tree], config, verifier=verifier, seed=args.seed, counter=counter)

    # --- the question and what the graph contributed
    console.print(Panel(Text(args.question), title="question", title_align="left"))
    if retrieval is not None:
        console.print(Text("retrieved: ", style="bold").append(head[len(THINKING_OPEN) + 1 :].strip()))

    # --- every chain, round by round
    marks = {True: ("✓ correct", "green"), False: ("✗ incorrect", "red"), None: ("unverified", "yellow")}
    finals: list[str | None] = []
    for chain in range(args.n):
        rounds = sorted((r for r in tree.rounds if r.chain == chain), key=lambda r: r.round)
        parts = []
        for r in rounds:
            # a malformed round may hold its answer inside an unclosed thinking: read it from the whole text
            predicted = extract_answer(r.parse.answer or r.text)
            mark, style = marks[r.outcome]
            title = Text(f"round {r.round}", style="bold")
            title.append(f"  answer {predicted if predicted is not None else '–'}  ")
            title.append(mark, style=style)
            title.append(f"  {r.num_tokens} tokens", style="dim")
            parts.append(title)
            if r.issues:
                parts.append(Text("malformed: " + "; ".join(r.issues), style="red"))
            if r.parse.reflection is not None:
                parts.append(Text("reflection: ", style="magenta").append(r.parse.reflection))
            if r.parse.thinking is not None:
                parts.append(Text("thinking: ", style="cyan").append(r.parse.thinking))
            parts.append(Text("answer: ", style="bold").append(r.parse.answer))
        finals.append(extract_answer(rounds[-1].parse.answer or rounds[-1].text) if rounds else None)
        console.print(Panel(Group(*parts), title=f"chain {chain}", title_align="left"))

    # --- the vote over the chains' last rounds
    table = Table(title="final answers")
    table.add_column("chain", justify="right")
    table.add_column("answer")
    for chain, answer in enumerate(finals):
        table.add_row(str(chain), "–" if answer is None else answer)
    console.print(table)
    voted = majority_vote(finals)
    votes = sum(1 for a in finals if a is not None and voted is not None and is_equivalent(a, voted))
    line = Text("final answer (self-consistency vote): ", style="bold")
    line.append("none" if voted is None else f"{voted}  ({votes} of {len(finals)} chains)")
    if verifier is not None and voted is not None:
        correct = verifier.check(task, f"#### {voted}").correct
        line.append(
            "  ✓ equals gold" if correct else f"  ✗ gold is {args.answer}", "green" if correct else "red"
        )
    console.print(line)
    console.print(Text(f"{counter.tokens:,} tokens in {counter.generate_calls} generate calls", style="dim"))
    if args.out:
        atomic_write_json(args.out, tree.to_dict("preflexor"))
        console.print(f"tree -> {args.out}", markup=False)
    return 0
