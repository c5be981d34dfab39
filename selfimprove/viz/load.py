"""Reading what the viewer shows: a tree JSON, an iteration folder or a run folder, with their pairs.

Every input becomes one `VizInput`: iterations, each a list of trees with the preference pairs drawn
from them. Trees come from `Tree.to_dict` (selfimprove/search/tree.py), pairs from `pairs.jsonl`
(selfimprove/records.py). A tree file that is not valid JSON or lacks a field the viewer needs raises
ValueError naming the file (and node); a pair row that names nodes missing from its tree is kept, and
the viewer simply draws no edge for it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.io import read_jsonl

logger = logging.getLogger(__name__)

NODE_FIELDS = ("id", "parent", "text", "children", "N", "Q")
# Pair fields the viewer uses; the prompt is left out because it is the tree's prompt plus the path to
# node_id, which the viewer already shows, and it would repeat the question once per pair.
PAIR_FIELDS = (
    "kind",
    "node_id",
    "chosen_id",
    "rejected_id",
    "depth",
    "q_chosen",
    "q_rejected",
    "n_chosen",
    "n_rejected",
    "chosen",
    "rejected",
    "rounds",  # PRefLexOR: the rejected and chosen rounds, and whether the chosen one fixed the rejected
    "fixed",
)


@dataclass(frozen=True)
class VizTree:
    name: str  # the tree file's stem
    tree: dict[str, Any]  # Tree.to_dict, non-finite floats replaced by None
    pairs: list[dict[str, Any]]  # pairs.jsonl rows of this tree, PAIR_FIELDS only


@dataclass(frozen=True)
class VizIteration:
    name: str  # "iter_001", or the folder name of a lone iteration
    trees: list[VizTree]
    folder: Path | None = None  # where it was read from (its knowledge_graph.json, if any, is linked)


@dataclass(frozen=True)
class VizInput:
    title: str
    kind: str  # "tree" | "iteration" | "run"
    path: Path
    iterations: list[VizIteration]

    def select(self, iteration: str | None = None, task: str | None = None) -> VizInput:
        """Only the iteration named (`iter_002` or `2`) and/or the task id given; ValueError if none match."""
        iterations = self.iterations
        if iteration is not None:
            iterations = [it for it in iterations if _iteration_matches(it.name, iteration)]
            if not iterations:
                names = ", ".join(it.name for it in self.iterations)
                raise ValueError(f"no iteration {iteration!r} in {self.path}; it has {names}")
        if task is not None:
            iterations = [
                VizIteration(it.name, [t for t in it.trees if t.tree["task_id"] == task], it.folder)
                for it in iterations
            ]
            iterations = [it for it in iterations if it.trees]
            if not iterations:
                raise ValueError(f"no tree for task {task!r} in {self.path}")
        return VizInput(self.title, self.kind, self.path, iterations)


def _iteration_matches(name: str, wanted: str) -> bool:
    if name == wanted:
        return True
    digits = name.removeprefix("iter_")
    return wanted.isdigit() and digits.isdigit() and int(digits) == int(wanted)


def load_input(path: str | Path) -> VizInput:
    """A tree JSON file, an iteration folder (with trees/) or its trees/, or a run folder (iter_*/trees/)."""
    path = Path(path)
    if path.is_file():
        pairs_file = path.parent.parent / "pairs.jsonl" if path.parent.name == "trees" else None
        tree = load_tree(path, pairs_file)
        iteration_name = path.parent.parent.name if pairs_file else path.parent.name
        folder = path.parent.parent if pairs_file else None
        iteration = VizIteration(iteration_name, [tree], folder)
        return VizInput(str(tree.tree["task_id"]), "tree", path, [iteration])
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} does not exist: give a tree JSON, an iteration folder or a run folder"
        )
    if (path / "trees").is_dir():
        return VizInput(path.name, "iteration", path, [load_iteration(path)])
    if path.name == "trees" and any(path.glob("*.json")):  # the trees/ folder of an iteration
        return VizInput(path.parent.name, "iteration", path, [load_iteration(path.parent)])
    iteration_dirs = sorted(p for p in path.glob("iter_*") if p.is_dir())
    iterations = [load_iteration(p) for p in iteration_dirs if (p / "trees").is_dir()]
    iterations = [it for it in iterations if it.trees]
    if not iterations:
        raise ValueError(
            f"{path} holds no search trees: expected a tree JSON, a folder with trees/*.json, "
            "or a run folder with iter_*/trees/*.json"
        )
    return VizInput(path.name, "run", path, iterations)


def load_iteration(folder: str | Path) -> VizIteration:
    """`folder/trees/*.json` in file-name order, each with its rows of `folder/pairs.jsonl`."""
    folder = Path(folder)
    pairs_file = folder / "pairs.jsonl"
    pairs = _read_pairs(pairs_file) if pairs_file.exists() else {}
    trees = []
    for file in sorted((folder / "trees").glob("*.json")):
        tree = _read_tree(file)
        trees.append(VizTree(file.stem, tree, pairs.get(str(tree["task_id"]), [])))
    return VizIteration(folder.name, trees, folder)


def load_tree(file: str | Path, pairs_file: str | Path | None = None) -> VizTree:
    file = Path(file)
    tree = _read_tree(file)
    pairs = _read_pairs(Path(pairs_file)) if pairs_file and Path(pairs_file).exists() else {}
    return VizTree(file.stem, tree, pairs.get(str(tree["task_id"]), []))


def _read_tree(file: Path) -> dict[str, Any]:
    try:
        tree = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: malformed JSON ({err.msg} at line {err.lineno})") from None
    validate_tree(tree, where=str(file))
    return _finite(tree)


def validate_tree(tree: Any, *, where: str) -> None:
    """The fields the viewer reads, with one root and children that exist; ValueError naming `where`."""
    if not isinstance(tree, dict):
        raise ValueError(f"{where}: expected a JSON object (Tree.to_dict), got {type(tree).__name__}")
    for key in ("task_id", "nodes"):
        if key not in tree:
            raise ValueError(f"{where}: missing field {key!r}; a tree needs task_id and nodes")
    nodes = tree["nodes"]
    if not isinstance(nodes, list) or not nodes:
        raise ValueError(f"{where}: 'nodes' must be a non-empty list")
    ids = set()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise ValueError(f"{where}: node #{i} is a {type(node).__name__}, expected an object")
        missing = [k for k in NODE_FIELDS if k not in node]
        if missing:
            raise ValueError(f"{where}: node #{i} lacks {missing}; a node needs {list(NODE_FIELDS)}")
        if not isinstance(node["id"], int) or isinstance(node["id"], bool):
            raise ValueError(f"{where}: node #{i} has id {node['id']!r}; ids are integers")
        if node["id"] in ids:
            raise ValueError(f"{where}: node id {node['id']} appears twice")
        if not isinstance(node["children"], list):
            raise ValueError(f"{where}: node {node['id']}: 'children' must be a list of node ids")
        ids.add(node["id"])
    roots = [n["id"] for n in nodes if n["parent"] is None]
    if len(roots) != 1:
        raise ValueError(f"{where}: expected exactly one root (parent null), found {len(roots)}")
    for node in nodes:
        unknown = [c for c in node["children"] if c not in ids]
        if unknown or (node["parent"] is not None and node["parent"] not in ids):
            raise ValueError(
                f"{where}: node {node['id']} links to unknown node(s) {unknown or node['parent']}"
            )


def _read_pairs(file: Path) -> dict[str, list[dict[str, Any]]]:
    """pairs.jsonl rows grouped by tree id (tree_id, else task_id); rows without either are skipped."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    skipped = 0
    for _, row in read_jsonl(file):
        tree_id = row.get("tree_id", row.get("task_id"))
        if tree_id is None:
            skipped += 1
            continue
        grouped.setdefault(str(tree_id), []).append(_finite({k: row.get(k) for k in PAIR_FIELDS}))
    if skipped:
        logger.warning("%s: %d pair row(s) name no tree_id or task_id; not shown", file, skipped)
    return grouped


def _finite(obj: Any) -> Any:
    """NaN and infinities (which json.dumps writes but JSON.parse rejects) become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def short_text(text: object, limit: int) -> str:
    """One display line: whitespace runs (newlines too) become one space, control characters and lone
    surrogates become U+FFFD, and text longer than `limit` ends in an ellipsis."""
    line = " ".join(str(text).split())
    line = "".join(
        "\ufffd" if (ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 127) else c for c in line
    )
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_judged(node: dict[str, Any]) -> bool:
    """Whether a node carries a verdict: a terminal step, or any refinement round (each round is verified)."""
    return bool(node.get("terminal")) or node.get("round") is not None


def node_caption(node: dict[str, Any]) -> str:
    """What a node says: a step's text; for a refinement round (PRefLexOR), its round, chain and answer."""
    if node.get("round") is None:
        return str(node["text"])
    return f"round {node['round']} of chain {node.get('chain')}: {node.get('answer') or node['text']}"


def pair_roles(pairs: list[dict[str, Any]]) -> dict[int, str]:
    """Child node id -> "chosen" / "rejected" for step and extended pairs (full pairs name no nodes)."""
    roles: dict[int, str] = {}
    for pair in pairs:
        if pair.get("node_id") is None:
            continue
        for key, role in (("chosen_id", "chosen"), ("rejected_id", "rejected")):
            if pair.get(key) is not None:
                roles[pair[key]] = role
    return roles
