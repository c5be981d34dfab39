"""The search tree over reasoning steps: nodes, N/W/Q statistics, paths, and its JSON form.

One tree per task. A node is one step (a line of the solution); the root is the bare prompt. Each
evaluation of a node counts one visit on it and on every ancestor, so at all times
N(node) = own evaluations + sum of children's N, and the root's N is the number of simulations run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from selfimprove.search.base import Sample
from selfimprove.tasks.task import Task


@dataclass(frozen=True)
class Rollout:
    """A Monte Carlo continuation from a node to the end of a solution, judged by the verifier."""

    text: str
    correct: bool
    num_tokens: int


@dataclass
class Node:
    """Mutable while its tree is searched; frozen into JSON by `Tree.to_dict`."""

    id: int
    parent: int | None
    text: str  # the step, without the delimiter
    depth: int  # number of steps from the root (root = 0)
    prior: float = 1.0  # sibling-normalised, sums to 1 over a node's children
    logprob: float = 0.0  # summed log-prob of the step's tokens
    num_tokens: int = 0
    duplicates: int = 1  # how many of the k samples produced this (whitespace-normalised) step
    visits: int = 0  # N
    value_sum: float = 0.0  # W
    value: float | None = None  # the node's own leaf evaluation, once evaluated
    evaluations: int = 0  # how many times the node itself was evaluated (terminals can be revisited)
    terminal: bool = False
    finished: bool = False  # terminal because the solution ended (answer marker or end token), not max depth
    outcome: bool | None = None  # verifier verdict of a terminal's full solution
    pruned: bool = False  # the verifier proved this step false (a wrong calculator annotation): value 0
    expanded: bool = False
    children: list[int] = field(default_factory=list)
    rollouts: list[Rollout] = field(default_factory=list)
    virtual_loss: int = 0  # pending selections in the current lockstep round

    @property
    def q(self) -> float:
        """Q = W / N in [0, 1]; 0 for an unvisited node (callers use a first-play value instead)."""
        return self.value_sum / self.visits if self.visits else 0.0


class Tree:
    """A task's tree; `nodes[i].id == i`, and nodes[0] is the root."""

    def __init__(self, task: Task, prompt: str, delimiter: str) -> None:
        self.task = task
        self.prompt = prompt
        self.delimiter = delimiter
        self.nodes: list[Node] = [Node(id=0, parent=None, text="", depth=0)]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add_child(self, parent: Node, **fields: Any) -> Node:
        node = Node(id=len(self.nodes), parent=parent.id, depth=parent.depth + 1, **fields)
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def path(self, node: Node) -> list[Node]:
        """Nodes from the root to `node`, both included."""
        path = [node]
        while path[-1].parent is not None:
            path.append(self.nodes[path[-1].parent])
        return path[::-1]

    def prefix(self, node: Node) -> str:
        """The solution text up to and including `node`, each step followed by the delimiter."""
        return "".join(n.text + self.delimiter for n in self.path(node)[1:])

    def solution(self, node: Node) -> str:
        """The full solution text ending at terminal `node` (no trailing delimiter)."""
        return self.delimiter.join(n.text for n in self.path(node)[1:])

    def subtree(self, node: Node) -> Iterator[Node]:
        stack = [node]
        while stack:
            current = stack.pop()
            yield current
            stack.extend(self.nodes[c] for c in reversed(current.children))

    def backup(self, node: Node, value: float) -> None:
        """N += 1, W += v on every node of the path; Q = W/N follows."""
        for n in self.path(node):
            n.visits += 1
            n.value_sum += value

    def to_dict(self, search: str, stats: dict[str, Any]) -> dict[str, Any]:
        return {
            "task_id": self.task.id,
            "question": self.task.question,
            "answer": self.task.answer,
            "steps": self.task.steps,
            "prompt": self.prompt,
            "search": search,
            "delimiter": self.delimiter,
            "stats": stats,
            "nodes": [
                {
                    "id": n.id,
                    "parent": n.parent,
                    "text": n.text,
                    "depth": n.depth,
                    "prior": n.prior,
                    "logprob": n.logprob,
                    "tokens": n.num_tokens,
                    "duplicates": n.duplicates,
                    "N": n.visits,
                    "Q": n.q,
                    "value": n.value,
                    "evaluations": n.evaluations,
                    "terminal": n.terminal,
                    "outcome": n.outcome,
                    "pruned": n.pruned,
                    "children": list(n.children),
                    "rollouts": [
                        {"text": r.text, "correct": r.correct, "tokens": r.num_tokens} for r in n.rollouts
                    ],
                }
                for n in self.nodes
            ],
        }


def tree_stats(tree: Tree) -> dict[str, float]:
    solutions = tree_samples(tree)
    return {
        "nodes": len(tree.nodes),
        "depth": max(n.depth for n in tree.nodes),
        "simulations": tree.root.visits,
        "tokens": sum(n.num_tokens for n in tree.nodes)
        + sum(r.num_tokens for n in tree.nodes for r in n.rollouts),
        "solved": any(s.correct for s in solutions),
        "root_q": tree.root.q,
    }


def tree_samples(tree: Tree) -> list[Sample]:
    """Every complete solution in the tree (terminal paths and rollouts), verified, deduplicated by text."""
    seen: set[str] = set()
    samples = []
    for node in tree.nodes:
        candidates = []
        if node.terminal and node.outcome is not None and node.finished:
            candidates.append((tree.solution(node), node.outcome, sum(n.num_tokens for n in tree.path(node))))
        for rollout in node.rollouts:
            tokens = sum(n.num_tokens for n in tree.path(node)) + rollout.num_tokens
            candidates.append((tree.prefix(node) + rollout.text, rollout.correct, tokens))
        for text, correct, tokens in candidates:
            if text not in seen:
                seen.add(text)
                samples.append(Sample(tree.task.id, tree.prompt, text, correct, tokens))
    return samples
