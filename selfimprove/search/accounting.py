"""Generation accounting shared by every search: tokens and calls, and the flat `search/*` statistics.

Budgets between searches are compared in generated tokens, so every search generates through `Counter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selfimprove.policy.base import Completion, Policy
from selfimprove.search.tree import Tree, tree_samples


@dataclass
class Counter:
    """Counts what a search asked of the policy."""

    tokens: int = 0
    generate_calls: int = 0
    prompts: int = 0

    def generate(
        self,
        policy: Policy,
        prompts: Sequence[str],
        *,
        n: int,
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop: tuple[str, ...],
        seed: int,
    ) -> list[list[Completion]]:
        results = policy.generate(
            prompts,
            n=n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            seed=seed,
        )
        self.generate_calls += 1
        self.prompts += len(prompts)
        self.tokens += sum(c.num_tokens for group in results for c in group)
        return results


def search_stats(trees: Sequence[Tree], counter: Counter, seconds: float) -> dict[str, float]:
    """Metrics with namespaced keys: trees, nodes, solved trees, tokens, calls, throughput."""
    nodes = sum(len(t.nodes) for t in trees)
    return {
        "search/trees": len(trees),
        "search/nodes": nodes,
        "search/solved": sum(any(s.correct for s in tree_samples(t)) for t in trees),
        "search/false_steps": sum(n.pruned for t in trees for n in t.nodes),
        "search/tokens": counter.tokens,
        "search/generate_calls": counter.generate_calls,
        "search/seconds": seconds,
        "search/tokens_per_s": counter.tokens / seconds if seconds else 0.0,
        "search/nodes_per_s": nodes / seconds if seconds else 0.0,
    }
