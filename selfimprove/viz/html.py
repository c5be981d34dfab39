"""The offline HTML viewer: one self-contained file (inline CSS, JS and data; no network) per input.

Each tree goes into its own `<script type="application/json">` block, parsed only when the tree is
shown, so a run with many trees opens as fast as one with a few. The JSON is ASCII-escaped and `<` is
written as \\u003c, so no model output (a stray `</script>`, lone surrogates, control characters) can
end the block early or break the file's encoding.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from selfimprove.io import atomic_write_text
from selfimprove.viz.load import VizInput, load_input
from selfimprove.viz.template import CSS, JS, PAGE

logger = logging.getLogger(__name__)

_KNOWLEDGE_FILE = "knowledge_graph.json"  # what the loop saves a search's knowledge graph as


def _script_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def _index(data: VizInput, knowledge: dict[int, str]) -> dict[str, Any]:
    """What the selectors need before any tree is parsed: names, node counts, solved flags, and the
    iteration's knowledge-graph page if there is one."""
    return {
        "title": data.title,
        "iterations": [
            {
                "name": iteration.name,
                "knowledge": knowledge.get(i),
                "trees": [
                    {
                        "name": t.name,
                        "task_id": str(t.tree["task_id"]),
                        "nodes": len(t.tree["nodes"]),
                        "solved": t.tree.get("stats", {}).get("solved"),
                    }
                    for t in iteration.trees
                ],
            }
            for i, iteration in enumerate(data.iterations)
        ],
    }


def render_html(data: VizInput, *, knowledge: dict[int, str] | None = None) -> str:
    """The page; `knowledge` maps an iteration's index to the href of its knowledge-graph page."""
    index = _index(data, knowledge or {})
    blocks = [f'<script type="application/json" id="viz-index">{_script_json(index)}</script>']
    for i, iteration in enumerate(data.iterations):
        for j, tree in enumerate(iteration.trees):
            payload = {**tree.tree, "pairs": tree.pairs}
            blocks.append(
                f'<script type="application/json" id="viz-tree-{i}-{j}">{_script_json(payload)}</script>'
            )
    values = {"TITLE": html.escape(data.title), "CSS": CSS, "JS": JS, "DATA": "\n".join(blocks)}
    # one pass, so text inserted for one placeholder is never scanned for another
    return re.sub(r"__(TITLE|CSS|JS|DATA)__", lambda m: values[m.group(1)], PAGE)


def write_html(data: VizInput, out: str | Path) -> Path:
    """The viewer at `out`; an iteration that holds a knowledge graph (PRefLexOR's knowledge_graph.json) gets
    its interactive page (viz/knowledge_html.py) written beside it, and the viewer links to that page."""
    out = Path(out)
    knowledge = {}
    for i, iteration in enumerate(data.iterations):
        graph_file = iteration.folder / _KNOWLEDGE_FILE if iteration.folder is not None else None
        if graph_file is not None and graph_file.is_file():
            from selfimprove.knowledge import KnowledgeGraph
            from selfimprove.viz.knowledge_html import write_knowledge_html

            try:
                graph = KnowledgeGraph.load(graph_file)
            except ValueError as err:  # the trees are still worth showing
                logger.warning("knowledge graph not linked: %s", err)
                continue
            title = f"{data.title} / {iteration.name} knowledge graph"
            page = write_knowledge_html(graph, graph_file.with_suffix(".html"), title=title)
            knowledge[i] = Path(os.path.relpath(page, out.parent)).as_posix()
    atomic_write_text(out, render_html(data, knowledge=knowledge))
    return out


def write_viewer(run_dir: str | Path) -> Path:
    """`run_dir/viewer.html` over every iteration's trees (the file the run report links to)."""
    run_dir = Path(run_dir)
    return write_html(load_input(run_dir), run_dir / "viewer.html")
