"""Search trees as terminal text: a rich Tree per search tree, one line per node with Q, N and prior.

Every node is listed (nothing is collapsed), each line starting with its id, so the output can be
grepped; terminals carry ✓ (verified correct), ✗ (incorrect) or ■ (cut off, unverified), and the
sibling steps that a preference pair contrasts are tagged [chosen] / [rejected]. Model text goes in as
plain `rich.text.Text`, never as markup, so brackets in a step cannot restyle the output.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from rich.tree import Tree as RichTree

from selfimprove.viz.load import VizInput, is_judged, node_caption, pair_roles, short_text


def _node_label(node: dict[str, Any], role: str | None, text_limit: int) -> Text:
    visits = node.get("N") or 0
    q = f"{node['Q']:.2f}" if visits and node.get("Q") is not None else "  - "
    label = Text(no_wrap=True, overflow="ellipsis")
    if node["parent"] is None:
        label.append("root", style="bold")
        label.append(f"  Q={q} N={visits}")
        return label
    label.append(f"#{node['id']}", style="bold")
    label.append(f"  Q={q} N={visits}")
    if node.get("prior") is not None:
        label.append(f" P={node['prior']:.2f}", style="dim")
    if is_judged(node):
        outcome = node.get("outcome")
        mark, style = (
            ("✓", "green") if outcome is True else ("✗", "red") if outcome is False else ("■", "dim")
        )
        label.append(f" {mark}", style=f"bold {style}")
    if role:
        label.append(f" [{role}]", style="green" if role == "chosen" else "red")
    label.append("  " + short_text(node_caption(node), text_limit))
    return label


def tree_text(
    tree: dict[str, Any], pairs: list[dict[str, Any]], title: str, *, text_limit: int = 80
) -> RichTree:
    """A rich Tree of every node of one search tree, children in stored order."""
    by_id = {n["id"]: n for n in tree["nodes"]}
    roles = pair_roles(pairs)
    stats = tree.get("stats", {})
    solved = stats.get("solved")
    heading = Text(title, style="bold")
    if tree.get("structure") == "refinement":  # PRefLexOR: chains of rounds, not simulations
        work = ", ".join(f"{key} {stats.get(key, '?')}" for key in ("chains", "rounds", "fixed"))
    else:
        work = f"depth {stats.get('depth', '?')}, simulations {stats.get('simulations', '?')}"
    heading.append(
        f"  nodes {len(tree['nodes'])}, {work}, tokens {stats.get('tokens', '?')}, pairs {len(pairs)}, "
    )
    heading.append(
        "solved" if solved else "not solved" if solved is False else "solved ?",
        style="green" if solved else "red",
    )
    out = RichTree(heading)
    root = next(n for n in tree["nodes"] if n["parent"] is None)
    # iterative, so a very deep tree cannot hit the recursion limit
    stack = [(root, out.add(_node_label(root, None, text_limit)))]
    while stack:
        node, branch = stack.pop()
        children = [by_id[c] for c in node["children"] if c in by_id]
        added = [
            (child, branch.add(_node_label(child, roles.get(child["id"]), text_limit))) for child in children
        ]
        stack.extend(reversed(added))
    return out


def render_text(data: VizInput, *, text_limit: int = 80) -> list[RichTree]:
    """One rich Tree per search tree, in iteration then file order."""
    return [
        tree_text(t.tree, t.pairs, f"{iteration.name} / {t.tree['task_id']}", text_limit=text_limit)
        for iteration in data.iterations
        for t in iteration.trees
    ]
