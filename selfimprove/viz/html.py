"""The offline HTML viewer: one self-contained file (inline CSS, JS and data; no network) per input.

Each tree goes into its own `<script type="application/json">` block, parsed only when the tree is
shown, so a run with many trees opens as fast as one with a few. The JSON is ASCII-escaped and `<` is
written as \\u003c, so no model output (a stray `</script>`, lone surrogates, control characters) can
end the block early or break the file's encoding.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from selfimprove.io import atomic_write_text
from selfimprove.viz.load import VizInput, load_input
from selfimprove.viz.template import CSS, JS, PAGE


def _script_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def _index(data: VizInput) -> dict[str, Any]:
    """What the selectors need before any tree is parsed: names, node counts, solved flags."""
    return {
        "title": data.title,
        "iterations": [
            {
                "name": iteration.name,
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
            for iteration in data.iterations
        ],
    }


def render_html(data: VizInput) -> str:
    blocks = [f'<script type="application/json" id="viz-index">{_script_json(_index(data))}</script>']
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
    out = Path(out)
    atomic_write_text(out, render_html(data))
    return out


def write_viewer(run_dir: str | Path) -> Path:
    """`run_dir/viewer.html` over every iteration's trees (the file the run report links to)."""
    run_dir = Path(run_dir)
    return write_html(load_input(run_dir), run_dir / "viewer.html")
