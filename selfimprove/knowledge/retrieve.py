"""Retrieval from the knowledge graph: a question's concepts, the relations around them, and the nearest
solved problems, for the thinking context (PRefLexOR's in-situ graph, read from stored data).

Concepts come from the question alone (selfimprove/knowledge/extract.py), so retrieval needs no solution.
Relations are the graph's formulas that the question's roles can feed: every input is a stated role of the
question or a result role (total, count, money), and at least one is stated. They are ranked by how many of
their inputs the question states, then by support, then by name.

The nearest solved examples are ranked by a deterministic similarity over concept sets: first the problems
of the same structure (the roles of the stated quantities, grouped by sentence: the example's plan then has
the operations the question needs, in order), then the Jaccard index of the concept sets, then the task id.
A solved task with the same question text as the query is never returned: retrieval must not hand the
search the plan of the very problem it is solving.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfimprove.knowledge.extract import extract_question

if TYPE_CHECKING:
    from selfimprove.knowledge.graph import KnowledgeGraph

__all__ = ["MAX_RELATIONS", "Retrieval", "retrieve"]

MAX_RELATIONS = 6  # enough for a 4-step problem's operations; more is noise in a short thinking block
_RESULT_ROLES = frozenset({"total", "count", "money"})


@dataclass(frozen=True)
class Retrieval:
    """What the graph knows about a question."""

    concepts: tuple[str, ...]
    relations: tuple[str, ...]  # readable typed edges, e.g. "total = count * price"
    examples: tuple[str, ...]  # task ids of the nearest solved problems, nearest first
    example_plans: tuple[str, ...] = ()  # their plans, e.g. "10*7, 70-19"

    def thinking_prefix(self) -> str:
        """The retrieved lines of a thinking block: "Concepts: ...\\n", then "Example: <plan>\\n" if any."""
        lines = f"Concepts: {', '.join(self.concepts) if self.concepts else 'none'}\n"
        if self.example_plans:
            lines += f"Example: {self.example_plans[0]}\n"
        return lines


class _Index:
    """Solved tasks grouped by concept set (ids sorted), per structure and overall, and the graph's formulas
    ranked for `_relations`. Concept sets are int bit masks, so a Jaccard index costs two popcounts.
    The graph keeps it current: `add` files a newly solved task, and growth marks the formulas stale."""

    def __init__(self, graph: KnowledgeGraph) -> None:
        self.graph = graph
        self.bits: dict[str, int] = {}
        self.groups: list[tuple[int, list[str]]] = []  # (mask, ids), the ids list shared with _ids
        self.by_structure: dict[tuple[str, ...], list[tuple[int, list[str]]]] = {}
        self._ids: dict[tuple[tuple[str, ...] | None, frozenset[str]], list[str]] = {}
        self._formulas: list[tuple[int, str, frozenset[str]]] | None = None
        for task_id in sorted(graph.solved):
            self.add(task_id, graph.solved[task_id])

    def add(self, task_id: str, entry: dict[str, Any]) -> None:
        concepts = frozenset(entry["concepts"])
        for c in sorted(concepts):
            self.bits.setdefault(c, 1 << len(self.bits))
        mask = self.mask(concepts)
        structure = tuple(entry["structure"])
        for key, groups in (((None, concepts), self.groups), ((structure, concepts), None)):
            ids = self._ids.get(key)
            if ids is None:
                ids = self._ids[key] = []
                target = groups if groups is not None else self.by_structure.setdefault(structure, [])
                target.append((mask, ids))
            bisect.insort(ids, task_id)

    def stale(self) -> None:
        self._formulas = None

    @property
    def formulas(self) -> list[tuple[int, str, frozenset[str]]]:
        if self._formulas is None:
            self._formulas = sorted(
                (-data["support"], formula, frozenset(data["inputs"]))
                for formula, data in self.graph.formulas().items()
            )
        return self._formulas

    def mask(self, concepts: frozenset[str]) -> int:
        return sum(self.bits.get(c, 0) for c in concepts)


def _index(graph: KnowledgeGraph) -> _Index:
    if graph._retrieval_index is None:
        graph._retrieval_index = _Index(graph)
    return graph._retrieval_index


def _nearest(
    groups: list[tuple[int, list[str]]],
    mask: int,
    unknown: int,
    k: int,
    skip: Callable[[str], bool],
    *,
    min_score: float = 0.0,
) -> list[tuple[float, str]]:
    """Up to k (jaccard, id) pairs, best first (higher Jaccard index, then smaller id).

    `mask` holds the query's concepts known to the index; `unknown` counts the others (in no union).
    """
    levels: dict[float, list[list[str]]] = {}
    for group, ids in groups:
        union = (mask | group).bit_count() + unknown
        score = (mask & group).bit_count() / union if union else 0.0
        if score >= min_score:
            levels.setdefault(score, []).append(ids)
    ranked: list[tuple[float, str]] = []
    for score in sorted(levels, reverse=True):  # few distinct scores: walk them best first
        level = []
        for ids in levels[score]:
            taken = 0
            for task_id in ids:
                if taken == k:
                    break
                if not skip(task_id):
                    level.append(task_id)
                    taken += 1
        ranked += [(score, task_id) for task_id in sorted(level)[: k - len(ranked)]]
        if len(ranked) == k:
            break
    return ranked


def _relations(index: _Index, roles: frozenset[str]) -> tuple[str, ...]:
    scored = []
    for negative_support, formula, inputs in index.formulas:
        stated = len(inputs & roles)
        if stated and inputs <= roles | _RESULT_ROLES:
            scored.append((-stated, negative_support, formula))
    return tuple(formula for *_, formula in sorted(scored)[:MAX_RELATIONS])


def retrieve(
    graph: KnowledgeGraph, question: str, *, examples: int = 1, exclude: Collection[str] = ()
) -> Retrieval:
    """Concepts, relations and up to `examples` nearest solved tasks (never one in `exclude`, never one with
    this same question text)."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
        raise ValueError(f"examples={examples!r}; allowed: an integer >= 0")
    ext = extract_question(question)
    concepts = frozenset(ext.concepts)
    excluded = set(exclude)
    solved = graph.solved

    def skip(task_id: str) -> bool:
        return task_id in excluded or solved[task_id]["question"] == question

    index = _index(graph)
    found: list[tuple[float, str]] = []
    if examples:
        mask, unknown = index.mask(concepts), sum(c not in index.bits for c in concepts)
        found = _nearest(index.by_structure.get(ext.structure, []), mask, unknown, examples, skip)
        if len(found) < examples:  # too few problems of the same structure: the nearest of the rest
            seen = {task_id for _, task_id in found}
            rest = _nearest(
                index.groups, mask, unknown, examples, lambda t: t in seen or skip(t), min_score=1e-9
            )
            found += rest[: examples - len(found)]
    ids = tuple(task_id for _, task_id in found)
    return Retrieval(
        concepts=ext.concepts,
        relations=_relations(index, frozenset(ext.roles)),
        examples=ids,
        example_plans=tuple(solved[task_id]["plan"] for task_id in ids),
    )
