"""The knowledge graph: a networkx MultiDiGraph of concepts and their typed relations, with provenance.

PRefLexOR (Buehler, 2024, https://arxiv.org/abs/2410.12375) asks a model to write a knowledge graph into its
thinking, as text. Here the graph is data: built deterministically from the task corpus and its verified
solutions (selfimprove/knowledge/extract.py), grown from each newly verified solution, persisted as
node-link JSON with the run, and used for retrieval, practice questions and a curriculum.

Nodes (attribute `type`):
    object      what a quantity counts: "apple", "box", "toy car"
    role        what a quantity is: count, money, price, rate, time, size, factor, percent, parts, gain,
                loss, total (a result combining two stated quantities), number (no role decided)
    operation   add, subtract, multiply, divide
Edges (attribute `type`; the MultiDiGraph key tells parallel edges apart):
    quantity_of   object -> role          "apple" is counted ("count") or priced ("price") in some problem
    computed_by   result role -> operation, key = formula: "total = count * price" (total is computed by
                  multiplying count and price)
    operand_of    input role -> operation, key = formula: one edge per distinct input role of the formula
    converts_to   object -> object, key = operation: packing flowers gives boxes ("flower" -> "box")
Every edge carries provenance and statistics:
    tasks         sorted ids of the tasks whose verified solution (or question) showed the relation
    support       len(tasks)
    uses          policy solutions that exercised the relation (add_solution)
    correct       how many of those got it right (for a wrong solution: the steps before its first wrong
                  step count as right, the first wrong step as wrong, later steps not at all)
Nodes carry `support`: the number of distinct tasks on their edges.

The graph also keeps, per solved task, its question, concepts, structure and plan (`solved`), from
which retrieval picks the nearest solved examples.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx

from selfimprove.io import atomic_write_text
from selfimprove.knowledge.extract import OPERATIONS, ROLES, Extraction, Step, extract
from selfimprove.tasks.arith import evaluate_expression
from selfimprove.tasks.task import Task

__all__ = ["EDGE_TYPES", "FORMAT", "NODE_TYPES", "KnowledgeGraph"]

logger = logging.getLogger(__name__)

FORMAT = "selfimprove.knowledge/1"
NODE_TYPES = ("object", "role", "operation")
EDGE_TYPES = ("quantity_of", "computed_by", "operand_of", "converts_to")
_EdgeKey = tuple[str, str, str]  # (source, target, key)


def node_type(name: str) -> str:
    if name in OPERATIONS.values():
        return "operation"
    return "role" if name in ROLES else "object"


def _question_edges(ext: Extraction) -> list[tuple[_EdgeKey, dict[str, Any]]]:
    return [((q.obj, q.role, "quantity_of"), {"type": "quantity_of"}) for q in ext.quantities if q.obj]


def _step_edges(step: Step) -> list[tuple[_EdgeKey, dict[str, Any]]]:
    """The edges one solution step shows: its formula, its result object, an object it converts."""
    edges: list[tuple[_EdgeKey, dict[str, Any]]] = []
    formula = step.formula
    if formula is not None and step.op is not None:
        attrs = {"formula": formula, "op": step.op, "inputs": list(step.inputs), "result": step.result_role}
        edges.append(((step.result_role, step.op, formula), {"type": "computed_by", **attrs}))
        for role in dict.fromkeys(step.inputs):
            edges.append(((role, step.op, formula), {"type": "operand_of", **attrs}))
        if step.input_obj and step.obj and step.input_obj != step.obj:
            edges.append(((step.input_obj, step.obj, step.op), {"type": "converts_to", "op": step.op}))
    if step.obj:
        edges.append(((step.obj, step.result_role, "quantity_of"), {"type": "quantity_of"}))
    return edges


def _solved_entry(question: str, ext: Extraction) -> dict[str, Any]:
    return {
        "question": question,
        "concepts": list(ext.concepts),
        "structure": list(ext.structure),
        "plan": ext.plan,
    }


def _value(text: str):
    try:
        return evaluate_expression(text)
    except ValueError:
        return None


def _same_step(gold: Step, step: Step) -> bool:
    """Whether the policy's step does what the gold step does: same operation on the same operands, and
    its written result is the true value."""
    if gold.op != step.op or gold.op is None:
        return False
    value = _value(step.expression)
    if value is None or value != _value(step.result) or value != _value(gold.result):
        return False
    ours = [_value(t) for t in _split_operands(step.expression)]
    theirs = [_value(t) for t in _split_operands(gold.expression)]
    if gold.op in ("add", "multiply"):
        return sorted(ours, key=str) == sorted(theirs, key=str)
    return ours == theirs


def _split_operands(expression: str) -> list[str]:
    out, current = [], ""
    for ch in expression:
        if ch in "+-*/" and current:
            out.append(current)
            current = ""
        else:
            current += ch
    return [*out, current] if current else out


class KnowledgeGraph:
    """Concepts and relations of a task corpus in `.graph` (a networkx.MultiDiGraph); see the module doc."""

    def __init__(self, graph: nx.MultiDiGraph | None = None) -> None:
        self.graph = graph if graph is not None else nx.MultiDiGraph()
        if not isinstance(self.graph, nx.MultiDiGraph):
            raise TypeError(f"expected a networkx.MultiDiGraph, got {type(self.graph).__name__}")
        self.graph.graph.setdefault("format", FORMAT)
        self.graph.graph.setdefault("solved", {})
        self._retrieval_index: Any = None  # built by retrieve.py on first use, then kept current
        self._node_tasks: dict[str, set[str]] | None = None  # node -> task ids on its edges, built on growth

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def build(cls, tasks: Sequence[Task], solutions: Mapping[str, str] | None = None) -> KnowledgeGraph:
        """The graph of `tasks`, from their questions and solutions; deterministic, independent of order.

        `solutions` maps a task id to a verified solution; a task it does not name uses `task.solution`.
        """
        edges: dict[_EdgeKey, dict[str, Any]] = {}
        tasks_of: dict[_EdgeKey, set[str]] = {}
        solved: dict[str, dict[str, Any]] = {}
        for task in tasks:
            solution = (solutions or {}).get(task.id, task.solution)
            ext = extract(task.question, solution)
            for key, attrs in _question_edges(ext) + [e for s in ext.steps for e in _step_edges(s)]:
                edges.setdefault(key, attrs)
                tasks_of.setdefault(key, set()).add(task.id)
            if solution and ext.steps:
                solved[task.id] = _solved_entry(task.question, ext)
        graph = nx.MultiDiGraph()
        graph.graph.update({"format": FORMAT, "solved": {k: solved[k] for k in sorted(solved)}})
        for u, v, key in sorted(edges):
            for name in (u, v):
                if name not in graph:
                    graph.add_node(name, type=node_type(name), support=0)
            ids = sorted(tasks_of[(u, v, key)])
            graph.add_edge(
                u, v, key=key, **edges[(u, v, key)], tasks=ids, support=len(ids), uses=0, correct=0
            )
        kg = cls(graph)
        kg._refresh_node_support()
        return kg

    def _grow(self, task_id: str, edges: list[tuple[_EdgeKey, dict[str, Any]]]) -> None:
        """Add edges (and their nodes) with `task_id` as provenance; known edges gain the id."""
        if self._node_tasks is None:
            self._refresh_node_support()
        assert self._node_tasks is not None
        for (u, v, key), attrs in edges:
            for name in (u, v):
                if name not in self.graph:
                    self.graph.add_node(name, type=node_type(name), support=0)
                    self._node_tasks[name] = set()
                self._node_tasks[name].add(task_id)
                self.graph.nodes[name]["support"] = len(self._node_tasks[name])
            if self.graph.has_edge(u, v, key):
                data = self.graph.edges[u, v, key]
                i = bisect.bisect_left(data["tasks"], task_id)
                if i == len(data["tasks"]) or data["tasks"][i] != task_id:
                    data["tasks"].insert(i, task_id)
                    data["support"] = len(data["tasks"])
            else:
                self.graph.add_edge(u, v, key=key, **attrs, tasks=[task_id], support=1, uses=0, correct=0)
        if self._retrieval_index is not None:
            self._retrieval_index.stale()  # formula supports changed

    def _register(self, task_id: str, question: str, ext: Extraction) -> None:
        """File a solved task for retrieval (the first solution of a task stays its example)."""
        if not ext.steps or task_id in self.solved:
            return
        self.solved[task_id] = _solved_entry(question, ext)
        if self._retrieval_index is not None:
            self._retrieval_index.add(task_id, self.solved[task_id])

    def add_solution(self, task: Task, solution: str, *, correct: bool) -> None:
        """Record one policy solution of `task`: grow the graph and update the usage statistics.

        A correct (verified) solution adds its relations with the task as provenance, and every relation it
        used counts as used and right. A wrong one is compared with the gold solution step by step: the gold
        steps before the first step the policy got wrong count as used and right, that step as used and
        wrong (the gold relations are added first, so the edges exist). The question's quantity edges count
        as used, and right when the whole solution is. Each edge counts once per call.
        """
        policy = extract(task.question, solution)
        credit: list[tuple[Step, bool]] = []
        if correct:
            self._grow(task.id, _question_edges(policy) + [e for s in policy.steps for e in _step_edges(s)])
            credit = [(step, True) for step in policy.steps]
            self._register(task.id, task.question, policy)
        elif task.solution:
            gold = extract(task.question, task.solution)
            self._grow(task.id, _question_edges(gold) + [e for s in gold.steps for e in _step_edges(s)])
            for i, step in enumerate(gold.steps):
                right = i < len(policy.steps) and _same_step(step, policy.steps[i])
                last = i == len(gold.steps) - 1
                credit.append((step, right and not last))
                if not right:
                    break
        # one count per edge and solution: right only if every use of it in this solution was right
        outcome: dict[_EdgeKey, bool] = {}
        for step, right in credit:
            for key, _ in _step_edges(step):
                outcome[key] = outcome.get(key, True) and right
        for key, _ in _question_edges(policy):
            if self.graph.has_edge(*key):
                outcome[key] = outcome.get(key, True) and correct
        for key, right in outcome.items():
            data = self.graph.edges[key]
            data["uses"] += 1
            data["correct"] += int(right)

    def add_extraction(self, task_id: str, question: str, extraction: Extraction) -> None:
        """Grow from a validated extraction (e.g. `parse_llm_extraction` of a capable model's reply)."""
        self._grow(
            task_id, _question_edges(extraction) + [e for s in extraction.steps for e in _step_edges(s)]
        )
        self._register(task_id, question, extraction)

    def _refresh_node_support(self) -> None:
        """Recount every node's support from its edges (once; `_grow` then keeps the counts current)."""
        self._node_tasks = {n: set() for n in self.graph}
        for u, v, data in self.graph.edges(data=True):
            self._node_tasks[u].update(data["tasks"])
            self._node_tasks[v].update(data["tasks"])
        for name, tasks in self._node_tasks.items():
            self.graph.nodes[name]["support"] = len(tasks)

    # ------------------------------------------------------------------------------------------ queries

    @property
    def solved(self) -> dict[str, dict[str, Any]]:
        """task id -> {"question", "concepts", "structure", "plan"} of every solved task in the graph."""
        return self.graph.graph["solved"]

    def formulas(self) -> dict[str, dict[str, Any]]:
        """formula -> its computed_by edge's data (result, op, inputs, tasks, support, uses, correct)."""
        out = {}
        for _, _, key, data in self.graph.edges(keys=True, data=True):
            if data["type"] == "computed_by":
                out[key] = data
        return {k: out[k] for k in sorted(out)}

    def summary(self) -> dict[str, int]:
        """Node and edge counts, by type, and the number of solved tasks."""
        out = {"nodes": self.graph.number_of_nodes(), "edges": self.graph.number_of_edges()}
        out |= {f"nodes/{t}": 0 for t in NODE_TYPES} | {f"edges/{t}": 0 for t in EDGE_TYPES}
        for _, data in self.graph.nodes(data=True):
            out[f"nodes/{data['type']}"] += 1
        for _, _, data in self.graph.edges(data=True):
            out[f"edges/{data['type']}"] += 1
        out["solved"] = len(self.solved)
        return out

    def retrieve(self, question: str, *, examples: int = 1, exclude: Collection[str] = ()):
        """The question's concepts, the relations around them and the nearest solved examples
        (selfimprove/knowledge/retrieve.py). A solved task with the same question text is never an example."""
        from selfimprove.knowledge.retrieve import retrieve

        return retrieve(self, question, examples=examples, exclude=exclude)

    def practice_questions(self, n: int, *, seed: int, min_steps: int = 1, max_steps: int = 4) -> list[Task]:
        """`n` new problems composed from graph paths (selfimprove/knowledge/practice.py)."""
        from selfimprove.knowledge.practice import practice_questions

        return practice_questions(self, n, seed=seed, min_steps=min_steps, max_steps=max_steps)

    def curriculum_weights(self, tasks: Sequence[Task]) -> list[float]:
        """Per task, the smoothed failure rate of its relations (selfimprove/knowledge/curriculum.py)."""
        from selfimprove.knowledge.curriculum import curriculum_weights

        return curriculum_weights(self, tasks)

    # ------------------------------------------------------------------------------------------ persistence

    def to_node_link(self) -> dict[str, Any]:
        """networkx node-link data (edges under "edges"), in a canonical order: nodes by type then name,
        edges by source, target and key, solved tasks by id. `networkx.node_link_graph(data, edges="edges")`
        reads it too."""
        order = {t: i for i, t in enumerate(NODE_TYPES)}
        nodes = sorted(self.graph.nodes(data=True), key=lambda n: (order.get(n[1]["type"], len(order)), n[0]))
        edges = sorted(self.graph.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2]))
        return {
            "directed": True,
            "multigraph": True,
            "graph": {"format": FORMAT, "solved": {k: self.solved[k] for k in sorted(self.solved)}},
            "nodes": [{"id": name, **data} for name, data in nodes],
            "edges": [{"source": u, "target": v, "key": key, **data} for u, v, key, data in edges],
        }

    def save(self, path: str | Path) -> None:
        """Write node-link JSON atomically (a run killed mid-write leaves the previous file)."""
        text = json.dumps(self.to_node_link(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        atomic_write_text(path, text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeGraph:
        """Read a graph written by `save`; a file of another shape raises ValueError naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read knowledge graph {path}: {err}") from None
        if not isinstance(data, dict) or not {"nodes", "edges", "graph"} <= data.keys():
            raise ValueError(f"{path}: not node-link JSON (needs 'nodes', 'edges' and 'graph')")
        found = data["graph"].get("format") if isinstance(data["graph"], dict) else None
        if found != FORMAT:
            raise ValueError(f"{path}: knowledge graph format {found!r}; this version reads {FORMAT!r}")
        graph = nx.MultiDiGraph()
        graph.graph.update({"format": FORMAT, "solved": dict(data["graph"].get("solved") or {})})
        try:
            for i, node in enumerate(data["nodes"]):
                attrs = {k: v for k, v in node.items() if k != "id"}
                if attrs.get("type") not in NODE_TYPES:
                    raise ValueError(
                        f"node {i} has type {attrs.get('type')!r}; allowed: {', '.join(NODE_TYPES)}"
                    )
                graph.add_node(node["id"], **attrs)
            for i, edge in enumerate(data["edges"]):
                attrs = {k: v for k, v in edge.items() if k not in ("source", "target", "key")}
                if attrs.get("type") not in EDGE_TYPES or not {"tasks", "uses", "correct"} <= attrs.keys():
                    raise ValueError(f"edge {i} lacks a known type or its provenance and statistics")
                if edge["source"] not in graph or edge["target"] not in graph:
                    raise ValueError(f"edge {i} joins a node the file does not list")
                graph.add_edge(edge["source"], edge["target"], key=edge["key"], **attrs)
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: malformed node-link data ({err!r})") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        return cls(graph)
