"""Preference pairs from a searched tree (DESIGN §5), after MCTS-DPO (Xie et al., 2024, arXiv:2405.00451).

At every node with at least two evaluated children: chosen = the max-Q child, rejected = the min-Q child,
kept when Q_max - Q_min >= margin and the chosen subtree holds a verified-correct solution (a correct
terminal, or a correct Monte Carlo rollout from a node in it: both are complete solutions the verifier
accepted). Unlike the reference code, "rejected" is the min-Q sibling by construction, never a random one.

Kinds:
- "step": prompt = question + shared prefix; each side is the single next step.
- "extended": each side is its step continued to the end: chosen along a verified-correct continuation,
  rejected along a verified-incorrect one.
- "full": complete solutions of the task, verified correct vs incorrect, sharing only the question.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfimprove.records import PreferencePair
from selfimprove.search.tree import Node, Tree

PAIR_KINDS = ("step", "extended", "full")


@dataclass(frozen=True)
class _Solution:
    text: str  # continuation from the start of the node's step to the end
    correct: bool


def _solutions_below(tree: Tree, node: Node, *, best_first: bool) -> list[_Solution]:
    """Complete solutions through `node`, as text continuing from the start of node's step.

    Walks children in Q order (highest first for `best_first`), so the first correct (or incorrect)
    solution found follows the best (or worst) path, as DESIGN §5 asks.
    """
    base = len(tree.prefix(tree.nodes[node.parent])) if node.parent is not None else 0
    found: list[_Solution] = []

    def visit(current: Node) -> None:
        if current.terminal and current.outcome is not None:
            found.append(_Solution(tree.solution(current)[base:], current.outcome))
        for rollout in current.rollouts:
            found.append(_Solution(tree.prefix(current)[base:] + rollout.text, rollout.correct))
        evaluated = [tree.nodes[c] for c in current.children if tree.nodes[c].visits]
        for child in sorted(evaluated, key=lambda n: (-n.q if best_first else n.q, n.id)):
            visit(child)

    visit(node)
    return found


def _step_completion(tree: Tree, node: Node) -> tuple[str, bool]:
    """A single step as a completion: a finished terminal ends the sequence, others end at the delimiter."""
    if node.terminal and node.finished:
        return node.text, True
    return node.text + tree.delimiter, False


def tree_pairs(
    tree: Tree, *, margin: float, kinds: tuple[str, ...], max_full_pairs: int
) -> list[PreferencePair]:
    """All pairs of the requested kinds from one searched tree, deterministic in tree order."""
    unknown = [k for k in kinds if k not in PAIR_KINDS]
    if unknown:
        raise ValueError(f"unknown pair kinds {unknown}; choose from {list(PAIR_KINDS)}")
    pairs: list[PreferencePair] = []
    for node in tree.nodes:
        evaluated = [tree.nodes[c] for c in node.children if tree.nodes[c].visits]
        if len(evaluated) < 2:
            continue
        chosen = max(evaluated, key=lambda n: (n.q, -n.id))
        rejected = min(evaluated, key=lambda n: (n.q, n.id))
        if chosen.q - rejected.q < margin:
            continue
        chosen_solutions = _solutions_below(tree, chosen, best_first=True)
        if not any(s.correct for s in chosen_solutions):
            continue
        prompt = tree.prompt + tree.prefix(node)
        meta = {
            "source": "mcts",
            "task_id": tree.task.id,
            "tree_id": tree.task.id,
            "node_id": node.id,
            "chosen_id": chosen.id,
            "rejected_id": rejected.id,
            "depth": node.depth,
            "q_chosen": chosen.q,
            "q_rejected": rejected.q,
            "n_chosen": chosen.visits,
            "n_rejected": rejected.visits,
        }
        if "step" in kinds:
            chosen_text, chosen_eos = _step_completion(tree, chosen)
            rejected_text, rejected_eos = _step_completion(tree, rejected)
            if chosen_text.strip() != rejected_text.strip():
                pairs.append(
                    PreferencePair(
                        prompt, chosen_text, rejected_text, chosen_eos, rejected_eos, {**meta, "kind": "step"}
                    )
                )
        if "extended" in kinds:
            good = next(s for s in chosen_solutions if s.correct)
            bad = next((s for s in _solutions_below(tree, rejected, best_first=False) if not s.correct), None)
            if bad is not None:
                pairs.append(
                    PreferencePair(prompt, good.text, bad.text, True, True, {**meta, "kind": "extended"})
                )
    if "full" in kinds:
        pairs.extend(full_solution_pairs(tree, max_pairs=max_full_pairs, source="mcts"))
    return pairs


def full_solution_pairs(tree: Tree, *, max_pairs: int, source: str) -> list[PreferencePair]:
    """Verified-correct vs verified-incorrect complete solutions of one task (deduplicated, in tree order)."""
    correct: list[str] = []
    incorrect: list[str] = []
    for solution in _solutions_below(tree, tree.root, best_first=True):
        bucket = correct if solution.correct else incorrect
        if solution.text not in bucket:
            bucket.append(solution.text)
    meta = {"source": source, "task_id": tree.task.id, "tree_id": tree.task.id, "kind": "full"}
    return [
        PreferencePair(tree.prompt, good, bad, True, True, dict(meta))
        for good, bad in list(zip(correct, incorrect, strict=False))[:max_pairs]
    ]
