"""Best-of-n: the baseline every tree search is measured against (DESIGN §5).

Sample n complete solutions per problem, verify each, and pair verified-correct against verified-incorrect
solutions (outcome-level DPO pairs). The same samples feed rejection-sampling fine-tuning (RFT: SFT on
the correct ones). The n samples are stored as a trie of steps in the common tree format (each sample
one evaluation at its terminal), so the run folder, the viewer and the pair statistics treat best-of-n
and MCTS alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from selfimprove.policy.base import Completion, Policy
from selfimprove.search.accounting import Counter, search_stats
from selfimprove.search.base import SearchProgress, SearchResult
from selfimprove.search.pairs import full_solution_pairs
from selfimprove.search.tree import Node, Tree, tree_samples, tree_stats
from selfimprove.tasks.task import Task
from selfimprove.verify.base import Verifier


@dataclass(frozen=True)
class BestOfNConfig:
    n: int = 8  # samples per problem
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    step_delimiter: str = "\n"  # only used to store samples as a trie of steps
    max_pairs_per_task: int = 2
    trees_per_batch: int = 32  # problems per generate call

    def __post_init__(self) -> None:
        for name in ("n", "max_new_tokens", "trees_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"best_of_n.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_pairs_per_task < 0:
            raise ValueError(f"best_of_n.max_pairs_per_task must be >= 0, got {self.max_pairs_per_task}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )


def _insert(tree: Tree, completion: Completion, correct: bool) -> Node:
    """Insert a complete solution into the trie and count it as one evaluation of its last step."""
    steps = completion.text.split(tree.delimiter)
    node = tree.root
    for depth, step in enumerate(steps, start=1):
        match = next((tree.nodes[c] for c in node.children if tree.nodes[c].text == step), None)
        if match is None:
            match = tree.add_child(node, text=step)
            if depth == len(steps):
                match.num_tokens = completion.num_tokens
                match.logprob = completion.logprob
        node = match
    node.terminal = True
    node.finished = completion.finish_reason != "length"
    node.outcome = correct
    node.evaluations += 1
    if node.value is None:
        node.value = float(correct)
    tree.backup(node, float(correct))
    return node


def _set_priors(tree: Tree) -> None:
    """Priors by visit share: the empirical sampling distribution over siblings."""
    for node in tree.nodes:
        total = sum(tree.nodes[c].visits for c in node.children)
        for c in node.children:
            tree.nodes[c].prior = tree.nodes[c].visits / total if total else 0.0
        node.expanded = bool(node.children)


class BestOfN:
    """Best-of-n sampling; `run` implements the Search protocol."""

    name = "best_of_n"

    def __init__(self, config: BestOfNConfig | None = None) -> None:
        self.config = config or BestOfNConfig()

    def run(
        self,
        policy: Policy,
        verifier: Verifier,
        tasks: Sequence[Task],
        prompt_fn: Callable[[Task], str],
        *,
        seed: int,
        token_budget: int | None = None,
        progress: SearchProgress | None = None,
    ) -> SearchResult:
        config = self.config
        start = time.perf_counter()
        counter = Counter()
        trees: list[Tree] = []
        for wave_start in range(0, len(tasks), config.trees_per_batch):
            if token_budget is not None and counter.tokens >= token_budget:
                break
            wave = [
                Tree(task, prompt_fn(task), config.step_delimiter)
                for task in tasks[wave_start : wave_start + config.trees_per_batch]
            ]
            groups = counter.generate(
                policy,
                [tree.prompt for tree in wave],
                n=config.n,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                stop=(),
                seed=seed + wave_start,
            )
            for tree, completions in zip(wave, groups, strict=True):
                for completion in completions:
                    finished = completion.finish_reason != "length"
                    correct = finished and verifier.check(tree.task, completion.text).correct
                    _insert(tree, completion, correct)
                _set_priors(tree)
            trees.extend(wave)
            if progress is not None:
                progress(len(trees), len(tasks), search_stats(trees, counter, time.perf_counter() - start))
        pairs = [
            p
            for tree in trees
            for p in full_solution_pairs(tree, max_pairs=config.max_pairs_per_task, source=self.name)
        ]
        stats = search_stats(trees, counter, time.perf_counter() - start) | {"search/pairs": len(pairs)}
        return SearchResult(
            trees=[tree.to_dict(self.name, tree_stats(tree)) for tree in trees],
            pairs=pairs,
            samples=[s for tree in trees for s in tree_samples(tree)],
            stats=stats,
        )
