"""The knowledge graph as one interactive, self-contained offline HTML page (inline CSS, JS and data).

Nodes are coloured by type (object, role, operation) and sized by support; typed edges are drawn one line
per (source, target, type), their width growing with support. Hovering a line shows its relations with
provenance and statistics; clicking a node or a line lists every edge in a side panel: formula, support,
how often the policy used it and got it right, and the tasks it came from (with their questions). Edge
types can be switched off, a search box finds a concept, and the view pans and zooms.

The layout is computed here (networkx's spring layout with a fixed seed), so the same graph always draws
the same picture and the page opens at once. Large graphs keep
the `max_nodes` best-supported nodes (roles and operations always). As in viz/html.py, the data sits in a
`<script type="application/json">` block, ASCII-escaped with `<` written as \\u003c, so no concept name or
question text can end the block early.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import networkx as nx

from selfimprove.io import atomic_write_text
from selfimprove.knowledge.curriculum import concept_failure_rates, failure_rate
from selfimprove.knowledge.graph import EDGE_TYPES, NODE_TYPES, KnowledgeGraph
from selfimprove.viz.html import _script_json

__all__ = ["knowledge_payload", "render_knowledge_html", "write_knowledge_html"]

MAX_NODES = 400  # an SVG of a few hundred labelled nodes stays readable and interactive
PROVENANCE_SHOWN = 8  # task ids listed per edge (with their questions); the count is always complete


def knowledge_payload(graph: KnowledgeGraph, *, max_nodes: int = MAX_NODES) -> dict[str, Any]:
    """What the page draws: the kept nodes, the edges among them, and the questions of listed tasks."""
    if max_nodes < 1:
        raise ValueError(f"max_nodes={max_nodes!r}; allowed: an integer >= 1")
    g = graph.graph
    order = {t: i for i, t in enumerate(NODE_TYPES)}
    ranked = sorted(g.nodes(data=True), key=lambda n: (n[1]["type"] == "object", -n[1]["support"], n[0]))
    kept = {name for name, _ in ranked[:max_nodes]}
    failure = concept_failure_rates(graph)
    nodes = [
        {"id": name, "type": data["type"], "support": data["support"], "fail": failure.get(name)}
        for name, data in sorted(g.nodes(data=True), key=lambda n: (order.get(n[1]["type"], 9), n[0]))
        if name in kept
    ]
    edges, questions = [], {}
    for u, v, key, data in sorted(g.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2])):
        if u not in kept or v not in kept:
            continue
        shown = data["tasks"][:PROVENANCE_SHOWN]
        for task_id in shown:
            if task_id in graph.solved:
                questions[task_id] = graph.solved[task_id]["question"]
        edges.append(
            {
                "source": u,
                "target": v,
                "key": key,
                "type": data["type"],
                "formula": data.get("formula"),
                "support": data["support"],
                "uses": data["uses"],
                "correct": data["correct"],
                "fail": failure_rate(data["uses"], data["correct"]),
                "tasks": shown,
            }
        )
    positions = _layout(graph, kept)
    for node in nodes:
        node["x"], node["y"] = positions[node["id"]]
    return {
        "summary": graph.summary(),
        "shown_nodes": len(nodes),
        "nodes": nodes,
        "edges": edges,
        "questions": questions,
        "edge_types": list(EDGE_TYPES),
    }


def _layout(graph: KnowledgeGraph, kept: set[str]) -> dict[str, tuple[float, float]]:
    """Fruchterman-Reingold positions (networkx.spring_layout, seed 0) in about -450..450: the same graph
    always draws the same picture."""
    simple = nx.Graph()
    simple.add_nodes_from(sorted(kept))
    simple.add_edges_from(
        sorted((u, v) for u, v in graph.graph.edges() if u in kept and v in kept and u != v)
    )
    if simple.number_of_nodes() == 0:
        return {}
    positions = nx.spring_layout(simple, seed=0, iterations=100, scale=450.0)
    return {name: (round(float(x), 1), round(float(y), 1)) for name, (x, y) in positions.items()}


def render_knowledge_html(
    graph: KnowledgeGraph, *, title: str = "knowledge graph", max_nodes: int = MAX_NODES
) -> str:
    payload = _script_json(knowledge_payload(graph, max_nodes=max_nodes))
    data = f'<script type="application/json" id="kg-data">{payload}</script>'
    values = {"TITLE": html.escape(title), "CSS": _CSS, "JS": _JS, "DATA": data}
    return re.sub(r"__(TITLE|CSS|JS|DATA)__", lambda m: values[m.group(1)], _PAGE)


def write_knowledge_html(
    graph: KnowledgeGraph, out: str | Path, *, title: str = "knowledge graph", max_nodes: int = MAX_NODES
) -> Path:
    """Write the page atomically; returns its path."""
    out = Path(out)
    atomic_write_text(out, render_knowledge_html(graph, title=title, max_nodes=max_nodes))
    return out


_CSS = r"""
:root { --bg: #f6f7f9; --panel: #ffffff; --ink: #1f2328; --muted: #656d76; --line: #d0d7de;
  --object: #2da44e; --role: #0969da; --operation: #bf3989; --accent: #0969da; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { font: 13px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
  background: var(--bg); display: flex; flex-direction: column; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px; padding: 8px 14px;
  background: var(--panel); border-bottom: 1px solid var(--line); }
header h1 { font-size: 15px; margin: 0 6px 0 0; white-space: nowrap; }
header label { color: var(--muted); display: flex; align-items: center; gap: 4px; }
input[type=search], button { font: inherit; color: var(--ink); background: #f6f8fa;
  border: 1px solid var(--line); border-radius: 6px; padding: 3px 9px; }
button { cursor: pointer; }
.chip { background: #f6f8fa; border: 1px solid var(--line); border-radius: 999px; padding: 1px 9px;
  white-space: nowrap; }
main { flex: 1; display: flex; min-height: 0; }
#canvas { flex: 1; position: relative; min-width: 0; }
#graph { width: 100%; height: 100%; display: block; cursor: grab; user-select: none; }
#graph.dragging { cursor: grabbing; }
.link { fill: none; stroke-opacity: .55; cursor: pointer; }
.link:hover, .link.on { stroke-opacity: 1; }
.link.quantity_of { stroke: #8c959f; }
.link.computed_by { stroke: var(--operation); }
.link.operand_of { stroke: var(--role); }
.link.converts_to { stroke: var(--object); stroke-dasharray: 5 4; }
.node { cursor: pointer; }
.node circle { stroke: #ffffff; stroke-width: 1.5; }
.node.object circle { fill: var(--object); }
.node.role circle { fill: var(--role); }
.node.operation circle { fill: var(--operation); }
.node.on circle { stroke: var(--ink); stroke-width: 3; }
.node.dim, .link.dim { opacity: .15; }
.node text { font-size: 11px; fill: var(--ink); paint-order: stroke; stroke: #ffffff; stroke-width: 3px;
  pointer-events: none; }
#tip { position: absolute; pointer-events: none; background: rgba(255,255,255,.97);
  border: 1px solid var(--line);
  border-radius: 6px; padding: 5px 8px; font-size: 12px; max-width: 380px; display: none; }
.legend { position: absolute; left: 10px; bottom: 10px; background: rgba(255,255,255,.93);
  border: 1px solid var(--line); border-radius: 8px; padding: 7px 10px; font-size: 12px;
  color: var(--muted); }
.legend span.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin: 0 4px 0 8px; }
aside { width: 430px; max-width: 45%; overflow-y: auto; background: var(--panel);
  border-left: 1px solid var(--line); padding: 12px 16px 24px; }
aside h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 14px 0 6px; }
aside h2:first-child { margin-top: 0; }
.edge { border: 1px solid var(--line); border-radius: 6px; padding: 4px 8px; margin-bottom: 5px; }
.edge .f { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-weight: 600; }
.edge .meta { color: var(--muted); font-size: 12px; }
.edge details { margin-top: 2px; }
.edge summary { cursor: pointer; color: var(--muted); font-size: 12px; }
.q { font-size: 12px; margin: 2px 0 4px; }
.q b { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-weight: 400; color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
table.kv { border-collapse: collapse; width: 100%; }
table.kv td { padding: 2px 6px 2px 0; border-bottom: 1px solid #eaeef2; }
table.kv td:first-child { color: var(--muted); width: 40%; }
"""

_JS = r"""
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("kg-data").textContent);
  const $ = (id) => document.getElementById(id);
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(0) + "%");
  const svg = $("graph"), viewport = $("viewport"), tip = $("tip");
  const view = { x: 0, y: 0, k: 1 };
  const nodes = DATA.nodes.map((n, i) => Object.assign({ index: i }, n));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const hidden = new Set();
  let selected = null;

  // ------------------------------------------------------------------ links: one line per (u, v, type)
  const links = [];
  const linkOf = new Map();
  DATA.edges.forEach((e, i) => {
    const id = e.source + "\u0000" + e.target + "\u0000" + e.type;
    let link = linkOf.get(id);
    if (!link) {
      link = { id: "l" + links.length, source: byId.get(e.source), target: byId.get(e.target), type: e.type,
               edges: [], support: 0 };
      linkOf.set(id, link);
      links.push(link);
    }
    link.edges.push(i);
    link.support += e.support;
  });
  const maxSupport = Math.max(1, ...nodes.map((n) => n.support));
  const maxLink = Math.max(1, ...links.map((l) => l.support));
  const radius = (n) => 5 + 13 * Math.sqrt(n.support / maxSupport);
  const width = (l) => 1 + 5 * Math.sqrt(l.support / maxLink);

  // ------------------------------------------------------------------ drawing
  function path(l) {
    const a = l.source, b = l.target;
    if (a === b) return "M" + a.x + "," + a.y + "c30,-40 50,10 0,12";
    const dx = b.x - a.x, dy = b.y - a.y, d = Math.sqrt(dx * dx + dy * dy) || 1;
    const bend = 0.12 * d, mx = (a.x + b.x) / 2 - (dy / d) * bend, my = (a.y + b.y) / 2 + (dx / d) * bend;
    const r = radius(b) + 3, ex = b.x - (b.x - mx) / Math.hypot(b.x - mx, b.y - my) * r;
    const ey = b.y - (b.y - my) / Math.hypot(b.x - mx, b.y - my) * r;
    return "M" + a.x.toFixed(1) + "," + a.y.toFixed(1) + "Q" + mx.toFixed(1) + "," + my.toFixed(1) + " "
      + ex.toFixed(1) + "," + ey.toFixed(1);
  }
  function draw() {
    const parts = [];
    for (const l of links) {
      if (hidden.has(l.type)) continue;
      parts.push('<path class="link ' + l.type + '" id="' + l.id + '" d="' + path(l) + '" stroke-width="'
        + width(l).toFixed(1) + '" marker-end="url(#arrow-' + l.type + ')"/>');
    }
    for (const n of nodes) {
      parts.push('<g class="node ' + n.type + '" data-id="' + esc(n.id) + '" transform="translate('
        + n.x.toFixed(1) + "," + n.y.toFixed(1) + ')"><circle r="' + radius(n).toFixed(1) + '"/><text x="'
        + (radius(n) + 3).toFixed(1) + '" y="4">' + esc(n.id) + "</text></g>");
    }
    viewport.innerHTML = parts.join("");
    highlight();
  }
  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }
  function fit() {
    if (!nodes.length) return;
    const box = svg.getBoundingClientRect();
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      x0 = Math.min(x0, n.x); y0 = Math.min(y0, n.y); x1 = Math.max(x1, n.x); y1 = Math.max(y1, n.y);
    }
    const w = Math.max(1, x1 - x0 + 120), h = Math.max(1, y1 - y0 + 80);
    view.k = Math.min(2, Math.min(box.width / w, box.height / h));
    view.x = box.width / 2 - view.k * (x0 + x1) / 2;
    view.y = box.height / 2 - view.k * (y0 + y1) / 2;
    applyView();
  }

  // ------------------------------------------------------------------ panel
  function edgeHtml(i) {
    const e = DATA.edges[i];
    const via = e.type === "converts_to" ? ", " + e.key : "";
    const name = e.formula || (e.source + " → " + e.target + " (" + e.type.replace("_", " ") + via + ")");
    const qs = e.tasks.map((t) => '<div class="q"><b>' + esc(t) + "</b> " + esc(DATA.questions[t] || "")
      + "</div>").join("");
    const rest = e.support - e.tasks.length;
    const more = rest > 0 ? '<div class="meta">… and ' + rest + " more</div>" : "";
    return '<div class="edge"><div class="f">' + esc(name) + '</div><div class="meta">' + esc(e.type)
      + " · support " + e.support + " · used " + e.uses + " · right " + e.correct + " · failure rate "
      + pct(e.fail) + "</div><details><summary>provenance (" + e.support + " tasks)</summary>" + qs + more
      + "</details></div>";
  }
  function showNode(n) {
    const incident = [];
    DATA.edges.forEach((e, i) => { if (e.source === n.id || e.target === n.id) incident.push(i); });
    const groups = {};
    for (const i of incident) (groups[DATA.edges[i].type] = groups[DATA.edges[i].type] || []).push(i);
    let out = "<h2>" + esc(n.type) + '</h2><div style="font-size:16px;font-weight:600">' + esc(n.id)
      + '</div><table class="kv"><tr><td>support (tasks)</td><td>' + n.support
      + "</td></tr><tr><td>edges</td><td>" + incident.length
      + "</td></tr><tr><td>failure rate (pooled)</td><td>" + pct(n.fail) + "</td></tr></table>";
    for (const t of DATA.edge_types) {
      if (!groups[t]) continue;
      groups[t].sort((a, b) => DATA.edges[b].support - DATA.edges[a].support);
      out += "<h2>" + esc(t.replace("_", " ")) + " (" + groups[t].length + ")</h2>"
        + groups[t].map(edgeHtml).join("");
    }
    $("panel").innerHTML = out;
  }
  function showLink(l) {
    $("panel").innerHTML = "<h2>" + esc(l.type.replace("_", " ")) + "</h2><div>" + esc(l.source.id) + " → "
      + esc(l.target.id) + "</div><h2>edges (" + l.edges.length + ")</h2>" + l.edges.map(edgeHtml).join("");
  }
  function highlight() {
    const around = new Set();
    if (selected) {
      around.add(selected.id);
      for (const l of links) {
        if (l.source !== selected && l.target !== selected) continue;
        around.add(l.source.id);
        around.add(l.target.id);
      }
    }
    for (const g of viewport.querySelectorAll(".node")) {
      const id = g.getAttribute("data-id");
      g.classList.toggle("on", !!selected && id === selected.id);
      g.classList.toggle("dim", !!selected && !around.has(id));
    }
    for (const el of viewport.querySelectorAll(".link")) {
      const l = links[Number(el.id.slice(1))];
      const on = !!selected && (l.source === selected || l.target === selected);
      el.classList.toggle("on", on);
      el.classList.toggle("dim", !!selected && !on);
    }
  }

  // ------------------------------------------------------------------ events
  viewport.addEventListener("click", (ev) => {
    const g = ev.target.closest(".node");
    if (g) { selected = byId.get(g.getAttribute("data-id")); showNode(selected); highlight(); return; }
    if (ev.target.classList.contains("link")) { showLink(links[Number(ev.target.id.slice(1))]); }
  });
  viewport.addEventListener("mousemove", (ev) => {
    if (!ev.target.classList.contains("link")) { tip.style.display = "none"; return; }
    const l = links[Number(ev.target.id.slice(1))];
    const lines = l.edges.slice(0, 6).map((i) => {
      const e = DATA.edges[i];
      return esc(e.formula || e.type.replace("_", " ")) + " <span style='color:#656d76'>· support "
        + e.support
        + " · used " + e.uses + " · right " + e.correct + "</span>";
    });
    if (l.edges.length > 6) lines.push("… " + (l.edges.length - 6) + " more");
    tip.innerHTML = "<b>" + esc(l.source.id) + " → " + esc(l.target.id) + "</b><br>" + lines.join("<br>");
    const box = $("canvas").getBoundingClientRect();
    tip.style.left = (ev.clientX - box.left + 14) + "px";
    tip.style.top = (ev.clientY - box.top + 10) + "px";
    tip.style.display = "block";
  });
  viewport.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  let drag = null;
  svg.addEventListener("mousedown", (ev) => {
    drag = { x: ev.clientX - view.x, y: ev.clientY - view.y };
    svg.classList.add("dragging");
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    view.x = ev.clientX - drag.x;
    view.y = ev.clientY - drag.y;
    applyView();
  });
  window.addEventListener("mouseup", () => { drag = null; svg.classList.remove("dragging"); });
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const box = svg.getBoundingClientRect(), f = ev.deltaY < 0 ? 1.15 : 1 / 1.15;
    const mx = ev.clientX - box.left, my = ev.clientY - box.top;
    view.x = mx - (mx - view.x) * f; view.y = my - (my - view.y) * f; view.k *= f;
    applyView();
  }, { passive: false });
  $("fit").addEventListener("click", fit);
  $("search").addEventListener("input", (ev) => {
    const q = ev.target.value.trim().toLowerCase();
    const exact = q ? nodes.find((n) => n.id.toLowerCase() === q) : null;
    const hit = exact || (q ? nodes.find((n) => n.id.toLowerCase().includes(q)) : null);
    selected = hit || null;
    if (hit) showNode(hit);
    highlight();
  });
  for (const t of DATA.edge_types) {
    const label = document.createElement("label");
    label.innerHTML = '<input type="checkbox" checked data-type="' + esc(t) + '"> '
      + esc(t.replace("_", " "));
    label.querySelector("input").addEventListener("change", (ev) => {
      if (ev.target.checked) hidden.delete(t); else hidden.add(t);
      draw();
    });
    $("filters").appendChild(label);
  }
  const s = DATA.summary;
  const chip = (text) => '<span class="chip">' + text + "</span>";
  const chips = ["nodes", "edges", "solved"].map((k) => chip("<b>" + s[k] + "</b> " + k));
  if (DATA.shown_nodes < s.nodes) {
    chips.push(chip("showing the " + DATA.shown_nodes + " best-supported nodes"));
  }
  $("stats").innerHTML = chips.join(" ");
  const ARROW = {
    quantity_of: "#8c959f", computed_by: "#bf3989", operand_of: "#0969da", converts_to: "#2da44e",
  };
  const defs = DATA.edge_types.map((t) => '<marker id="arrow-' + t + '" viewBox="0 0 10 10" refX="8" refY="5"'
    + ' markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto">'
    + '<path d="M0,0L10,5L0,10z" fill="'
    + (ARROW[t] || "#8c959f") + '"/></marker>').join("");
  svg.insertAdjacentHTML("afterbegin", "<defs>" + defs + "</defs>");
  draw();
  fit();
  if (!nodes.length) $("panel").innerHTML = '<p class="empty">The graph is empty.</p>';
  window.__kg = { nodes: nodes.length, links: links.length, edges: DATA.edges.length };
})();
"""

_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>__CSS__</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <input type="search" id="search" placeholder="find a concept" aria-label="find a concept">
  <button id="fit" title="fit the graph to the window">Fit</button>
  <span id="filters" style="display:flex;gap:10px"></span>
  <span id="stats" style="margin-left:auto"></span>
</header>
<main>
  <div id="canvas">
    <svg id="graph" xmlns="http://www.w3.org/2000/svg"><g id="viewport"></g></svg>
    <div id="tip"></div>
    <div class="legend">node<span class="dot" style="background:var(--object)"></span>object
      <span class="dot" style="background:var(--role)"></span>role
      <span class="dot" style="background:var(--operation)"></span>operation · size = support,
      line width = support; hover a line, click a node</div>
  </div>
  <aside id="panel"><p class="empty">Click a node or a line to see its relations, their provenance and
    statistics.</p></aside>
</main>
__DATA__
<script>__JS__</script>
</body>
</html>
"""
