"""A curriculum from the knowledge graph: weight the problems whose relations the policy fails on.

Each formula edge counts how often the policy used the relation and how often it got it right
(KnowledgeGraph.add_solution). Its failure rate is smoothed with a Beta(1, 1) prior (Laplace's rule),

    fail(e) = (uses - correct + 1) / (uses + 2),

so an unseen relation weighs 0.5, one always failed tends to 1 and one always right to 0. A task's weight is
the mean failure rate of the relations its gold solution uses (or of its question's quantity edges when it
has no solution), 0.5 when the graph knows none of them. Deterministic: no sampling happens here; a caller
draws tasks with these weights from its own seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from selfimprove.knowledge.extract import extract
from selfimprove.tasks.task import Task

if TYPE_CHECKING:
    from selfimprove.knowledge.graph import KnowledgeGraph

__all__ = ["PRIOR", "concept_failure_rates", "curriculum_weights", "failure_rate"]

PRIOR = 0.5  # the failure rate of a relation never used


def failure_rate(uses: int, correct: int) -> float:
    """Laplace-smoothed failure rate: (uses - correct + 1) / (uses + 2)."""
    if uses < 0 or not 0 <= correct <= uses:
        raise ValueError(f"need 0 <= correct <= uses, got uses={uses}, correct={correct}")
    return (uses - correct + 1) / (uses + 2)


def curriculum_weights(graph: KnowledgeGraph, tasks: Sequence[Task]) -> list[float]:
    """One weight in (0, 1) per task, higher for tasks whose relations the policy fails on."""
    formulas = graph.formulas()
    weights = []
    for task in tasks:
        ext = extract(task.question, task.solution)
        rates = [
            failure_rate(formulas[s.formula]["uses"], formulas[s.formula]["correct"])
            for s in ext.steps
            if s.formula in formulas
        ]
        if not rates:
            for q in ext.quantities:
                key = (q.obj, q.role, "quantity_of")
                if q.obj and graph.graph.has_edge(*key):
                    data = graph.graph.edges[key]
                    rates.append(failure_rate(data["uses"], data["correct"]))
        weights.append(sum(rates) / len(rates) if rates else PRIOR)
    return weights


def concept_failure_rates(graph: KnowledgeGraph) -> dict[str, float]:
    """Per role and operation node, the failure rate of the formulas it takes part in (uses pooled)."""
    uses: dict[str, int] = {}
    correct: dict[str, int] = {}
    for data in graph.formulas().values():
        for concept in {data["result"], data["op"], *data["inputs"]}:
            uses[concept] = uses.get(concept, 0) + data["uses"]
            correct[concept] = correct.get(concept, 0) + data["correct"]
    return {c: failure_rate(uses[c], correct[c]) for c in sorted(uses)}
