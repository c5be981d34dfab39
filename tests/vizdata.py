"""Search trees for the viz tests, grown with the engine's own Tree, PUCT selection, backup and pair code.

Only the language model is replaced, by a seeded random process: each step has a hidden chance of
leading to a right answer, inherited with noise from its parent, which decides its rollouts and the
answer a final step writes (judged against the gold answer). So the trees have the shapes, Q spread,
terminals and pairs of real searches at any size (5,000 nodes in about a second), and are written by
`write_search_result` exactly as a search writes them.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from selfimprove.search.base import SearchResult
from selfimprove.search.mcts import backup, select
from selfimprove.search.output import write_search_result
from selfimprove.search.pairs import tree_pairs
from selfimprove.search.tree import Node, Rollout, Tree, tree_samples, tree_stats
from selfimprove.tasks.task import Task


def _step(rng: random.Random, a: int, b: int) -> str:
    x, y = rng.randint(2, 60), rng.randint(2, 30)
    op = rng.choice("+-*")
    value = {"+": x + y, "-": x - y, "*": x * y}[op]
    return f"She has {x}{op}{y}=<<{x}{op}{y}={value}>>{value} of the {a + b} items."


def searched_tree(
    seed: int,
    *,
    min_nodes: int = 30,
    children: int = 3,
    max_depth: int = 5,
    rollouts: int = 2,
) -> Tree:
    """Simulations of select -> expand (k children) -> evaluate one new child -> backup, until `min_nodes`."""
    rng = random.Random(seed)
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    task = Task(
        id=f"synthetic-{seed:03d}",
        question=f"Tom has {a} apples and buys {b} more. How many apples does he have?",
        answer=str(a + b),
        metadata={"steps": 2},
    )
    tree = Tree(task, f"Question: {task.question}\nAnswer:\n", "\n")
    skill: dict[int, float] = {0: rng.uniform(0.3, 0.7)}

    def evaluate(node: Node) -> float:
        p = skill[node.id]
        if node.terminal:
            node.outcome = node.finished and node.text == f"#### {a + b}"  # the verifier's verdict
            return float(node.outcome)
        for _ in range(rollouts):
            correct = rng.random() < p
            answer = a + b if correct else a + b + rng.randint(1, 9)
            node.rollouts.append(Rollout(f"{_step(rng, a, b)}\n#### {answer}", correct, rng.randint(12, 40)))
        return sum(r.correct for r in node.rollouts) / rollouts

    def expand(leaf: Node) -> Node:
        logits = [rng.gauss(0, 1) for _ in range(children)]
        total = sum(math.exp(x) for x in logits)
        for logit in logits:
            child_skill = min(1.0, max(0.0, skill[leaf.id] + rng.gauss(0, 0.3)))
            finish = leaf.depth + 1 >= max_depth or rng.random() < 0.25
            answer = a + b if rng.random() < child_skill else a + b + rng.randint(1, 9)
            child = tree.add_child(
                leaf,
                text=f"#### {answer}" if finish else _step(rng, a, b),
                prior=math.exp(logit) / total,
                logprob=-rng.uniform(3, 30),
                num_tokens=rng.randint(5, 30),
                finished=finish,
                terminal=finish,
            )
            skill[child.id] = child_skill
        leaf.expanded = True
        return tree.nodes[leaf.children[0]]

    while len(tree.nodes) < min_nodes:
        leaf = select(tree, c_puct=1.0)
        assert leaf is not None  # no virtual loss here, so select always returns a node
        if leaf.terminal:
            backup(tree, leaf, evaluate(leaf))
            # PUCT may revisit a good terminal for long; a random open node keeps the tree growing
            open_nodes = [n for n in tree.nodes if not n.expanded and not n.terminal]
            if not open_nodes:
                raise RuntimeError(f"seed {seed}: no open node left at {len(tree.nodes)} nodes")
            leaf = rng.choice(open_nodes)
        target = leaf if leaf.visits == 0 else expand(leaf)
        backup(tree, target, evaluate(target))
    return tree


def write_iteration(folder: Path, seeds: list[int], **tree_kwargs: int) -> list[Tree]:
    """trees/*.json, pairs.jsonl (step, extended and full pairs), samples.jsonl and stats.json in `folder`."""
    trees = [searched_tree(seed, **tree_kwargs) for seed in seeds]
    pairs = [
        pair
        for tree in trees
        for pair in tree_pairs(tree, margin=0.2, kinds=("step", "extended", "full"), max_full_pairs=1)
    ]
    result = SearchResult(
        trees=[tree.to_dict("mcts", tree_stats(tree)) for tree in trees],
        pairs=pairs,
        samples=[s for tree in trees for s in tree_samples(tree)],
        stats={"search/trees": len(trees), "search/pairs": len(pairs)},
    )
    write_search_result(result, folder)
    return trees


def write_run(root: Path, iterations: dict[int, list[int]], **tree_kwargs: int) -> Path:
    """A run folder laid out as the loop writes it: config.toml, iter_000/eval.json, iter_k/ searches."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text('seed = 0\n\n[search]\ntype = "mcts"\n', encoding="utf-8")
    (root / "iter_000").mkdir(exist_ok=True)
    (root / "iter_000" / "eval.json").write_text('{"iteration": 0}\n', encoding="utf-8")
    for k, seeds in iterations.items():
        write_iteration(root / f"iter_{k:03d}", seeds, **tree_kwargs)
    return root


def write_real_search(model_path: Path, folder: Path, *, tasks: int = 2, seed: int = 3) -> SearchResult:
    """A small real MCTS search with the trained tiny model, written as the search command writes it."""
    from selfimprove.policy.hf import HFPolicy
    from selfimprove.search.mcts import MCTS, MCTSConfig
    from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks
    from selfimprove.verify.registry import make_verifier

    recipe = load_recipe("arith")
    config = MCTSConfig(
        simulations=6,
        children=2,
        rollouts=1,
        max_step_tokens=32,
        max_rollout_tokens=48,
        margin=0.3,
        pair_kinds=("step", "extended", "full"),
    )
    result = MCTS(config).run(
        HFPolicy.from_pretrained(model_path),
        make_verifier(recipe.verifier),
        load_tasks(recipe, "train", tasks, seed=seed, steps=1),
        lambda task: format_prompt(recipe, task),
        seed=seed,
    )
    write_search_result(result, folder)
    return result
