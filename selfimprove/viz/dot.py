"""Graphviz DOT for search trees: one cluster per tree, nodes coloured by Q and sized by visits.

The encoding follows the HTML viewer: fill colour from Q (red 0, amber .5, green 1; white when never
visited), box width and edge width growing with sqrt(N / N_max), a double border on terminals (green when
verified correct, red when incorrect, grey when cut off unverified), and the preference pairs' sibling
edges drawn green (chosen) and dashed red (rejected). Render with e.g. `dot -Tsvg trees.dot > trees.svg`.
"""

from __future__ import annotations

import colorsys
import math
from typing import Any

from selfimprove.viz.load import VizInput, is_judged, node_caption, pair_roles, short_text

GOOD, BAD, GREY = "#1a7f37", "#cf222e", "#57606a"


def q_color(q: float) -> str:
    """The viewer's Q ramp as hex (the same HSL formula as its `qColor`)."""
    t = min(1.0, max(0.0, q))
    if t < 0.5:
        hue, sat, light = 90 * t, 70 + 30 * t, 52
    else:
        hue, sat, light = 45 + 170 * (t - 0.5), 85 - 60 * (t - 0.5), 52 - 20 * (t - 0.5)
    r, g, b = colorsys.hls_to_rgb(hue / 360, light / 100, sat / 100)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _quote(text: str) -> str:
    """A DOT double-quoted string; backslashes are escaped so model text never forms \\n, \\l or \\N,
    and our own line breaks become DOT's centred-line escape \\n."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: object) -> str:
    return "[" + ", ".join(f"{k}={_quote(str(v))}" for k, v in attrs.items()) + "]"


def _tree_lines(tree: dict[str, Any], pairs: list[dict[str, Any]], prefix: str, text_limit: int) -> list[str]:
    nodes = tree["nodes"]
    max_n = max([1, *(n.get("N") or 0 for n in nodes)])
    roles = pair_roles(pairs)
    lines = []
    for n in nodes:
        share = math.sqrt(max(0, n.get("N") or 0) / max_n)
        visits = n.get("N") or 0
        q = f"{n['Q']:.2f}" if visits and n.get("Q") is not None else "-"
        if n["parent"] is None:
            label = f"root\nQ={q}  N={visits}"
        else:
            label = f"#{n['id']}  Q={q}  N={visits}\n{short_text(node_caption(n), text_limit)}"
        attrs: dict[str, object] = {
            "label": label,
            "fillcolor": q_color(n["Q"]) if visits and n.get("Q") is not None else "#ffffff",
            "width": f"{0.6 + 1.6 * share:.2f}",
        }
        if is_judged(n):
            outcome = n.get("outcome")
            attrs |= {
                "peripheries": 2,
                "color": GOOD if outcome is True else BAD if outcome is False else GREY,
            }
        lines.append(f"    {prefix}{n['id']} {_attrs(**attrs)};")
    for n in nodes:
        if n["parent"] is None:
            continue
        edge: dict[str, object] = {"penwidth": f"{1 + 4 * math.sqrt(max(0, n.get('N') or 0) / max_n):.2f}"}
        role = roles.get(n["id"])
        if role == "chosen":
            edge |= {"color": GOOD, "label": "chosen", "fontcolor": GOOD}
        elif role == "rejected":
            edge |= {"color": BAD, "style": "dashed", "label": "rejected", "fontcolor": BAD}
        lines.append(f"    {prefix}{n['parent']} -> {prefix}{n['id']} {_attrs(**edge)};")
    return lines


def render_dot(data: VizInput, *, text_limit: int = 48) -> str:
    """One digraph; each tree is a cluster whose node ids are prefixed `i<iteration>_t<tree>_`."""
    lines = [
        f"digraph {_quote(short_text(data.title, 200))} {{",
        '  graph [rankdir="TB", fontname="Helvetica", nodesep="0.25", ranksep="0.45"];',
        '  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize="10"];',
        '  edge [color="#afb8c1", arrowsize="0.6", fontname="Helvetica", fontsize="9"];',
    ]
    for i, iteration in enumerate(data.iterations):
        for j, viz_tree in enumerate(iteration.trees):
            tree = viz_tree.tree
            stats = tree.get("stats", {})
            title = (
                f"{iteration.name} / {tree['task_id']}: {len(tree['nodes'])} nodes, "
                f"depth {stats.get('depth', '?')}, solved {stats.get('solved', '?')}\n"
                + short_text(tree.get("question", ""), 120)
            )
            lines.append(f"  subgraph cluster_i{i}_t{j} {{")
            lines.append(f"    label={_quote(title)};")
            lines += _tree_lines(tree, viz_tree.pairs, f"i{i}_t{j}_", text_limit)
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
