"""The viewer page's static parts: HTML skeleton, CSS and JavaScript, kept as Python strings.

Kept in a module rather than package data so an installed wheel needs no data files, and the page stays
one self-contained file: no CDN, no fetch, nothing loaded from the network. `html.py` fills the
placeholders `__TITLE__` and `__DATA__` (the JSON script blocks).

The script draws only what is expanded: each tree starts collapsed below depth 3 (or earlier, once about
400 nodes are visible), so a 5,000-node tree opens instantly; the layout is a tidy top-down tree (leaves
on consecutive slots, each parent centred over its children), drawn as one SVG string per render.
"""

from __future__ import annotations

CSS = r"""
:root {
  --bg: #f6f7f9; --panel: #ffffff; --ink: #1f2328; --muted: #656d76; --line: #d0d7de;
  --accent: #0969da; --good: #1a7f37; --bad: #cf222e; --path: #0969da;
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { font: 13px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
  background: var(--bg); display: flex; flex-direction: column; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px; padding: 8px 14px;
  background: var(--panel); border-bottom: 1px solid var(--line); }
header h1 { font-size: 15px; margin: 0 6px 0 0; white-space: nowrap; }
header label { color: var(--muted); display: flex; align-items: center; gap: 5px; }
select, button { font: inherit; color: var(--ink); background: #f6f8fa; border: 1px solid var(--line);
  border-radius: 6px; padding: 3px 9px; }
select { max-width: 360px; }
button { cursor: pointer; }
button:hover { background: #eef1f4; }
.tools { display: flex; gap: 6px; }
.statsbar { display: flex; flex-wrap: wrap; gap: 6px; margin-left: auto; }
.chip { background: #f6f8fa; border: 1px solid var(--line); border-radius: 999px; padding: 1px 9px;
  white-space: nowrap; }
.chip b { font-weight: 600; }
.chip.yes { background: #dafbe1; border-color: #aceebb; color: var(--good); }
.chip.no { background: #ffebe9; border-color: #ffcecb; color: var(--bad); }
main { flex: 1; display: flex; min-height: 0; }
#canvas { flex: 1; position: relative; min-width: 0; }
#tree { width: 100%; height: 100%; display: block; cursor: grab; user-select: none; }
#tree.dragging { cursor: grabbing; }
.legend { position: absolute; left: 10px; bottom: 10px; background: rgba(255,255,255,.93);
  border: 1px solid var(--line); border-radius: 8px; padding: 7px 10px; font-size: 12px; color: var(--muted);
  display: grid; grid-template-columns: auto auto; gap: 3px 10px; align-items: center; }
.legend .ramp { width: 110px; height: 10px; border-radius: 3px;
  background: linear-gradient(90deg, hsl(0,70%,52%), hsl(45,85%,52%), hsl(130,55%,42%)); }
.legend svg { vertical-align: middle; }
.hint { position: absolute; right: 10px; bottom: 10px; font-size: 12px; color: var(--muted); }
aside { width: 440px; max-width: 45%; overflow-y: auto; background: var(--panel);
  border-left: 1px solid var(--line); padding: 12px 16px 24px; }
aside h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 16px 0 6px; }
aside h2:first-child { margin-top: 0; }
.question { white-space: pre-wrap; }
.gold { color: var(--muted); margin-top: 4px; }
table.kv { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.kv td { padding: 2px 6px 2px 0; border-bottom: 1px solid #eaeef2; vertical-align: top; }
table.kv td:first-child { color: var(--muted); width: 34%; }
.path { display: flex; flex-direction: column; gap: 4px; }
.step { border: 1px solid var(--line); border-left: 4px solid var(--qc, #8c959f); border-radius: 6px;
  padding: 4px 8px; cursor: pointer; background: #fbfcfd; }
.step:hover { background: #f3f6f9; }
.step.current { background: #ddf4ff; border-color: #54aeff; border-left-color: var(--qc, #8c959f); }
.step .meta { font-size: 11px; color: var(--muted); }
.step .txt, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px;
  white-space: pre-wrap; word-break: break-word; }
.empty { color: var(--muted); font-style: italic; }
.pill { display: inline-block; border-radius: 999px; padding: 0 7px; font-size: 11px; font-weight: 600; }
.pill.correct { background: #dafbe1; color: var(--good); }
.pill.incorrect { background: #ffebe9; color: var(--bad); }
.pill.open { background: #eaeef2; color: var(--muted); }
.pair { border: 1px solid var(--line); border-radius: 6px; padding: 5px 8px; margin-bottom: 5px; cursor: pointer; }
.pair:hover { background: #f3f6f9; }
.pair .c { color: var(--good); font-weight: 600; }
.pair .r { color: var(--bad); font-weight: 600; }
details { margin: 3px 0; }
summary { cursor: pointer; color: var(--muted); }
/* the tree */
.edge { fill: none; stroke: #afb8c1; stroke-linecap: round; pointer-events: none; }
.node rect.hit { fill: transparent; }
.edge.on-path { stroke: var(--path); }
.edge.chosen { stroke: var(--good); stroke-opacity: .9; }
.edge.rejected { stroke: var(--bad); stroke-opacity: .9; stroke-dasharray: 7 5; }
.node { cursor: pointer; }
.node circle.body { stroke: #ffffff; stroke-width: 1.5; }
.node.unvisited circle.body { fill: #ffffff; stroke: #8c959f; stroke-dasharray: 2 2; }
.node.correct circle.ring { fill: none; stroke: var(--good); stroke-width: 3; }
.node.incorrect circle.ring { fill: none; stroke: var(--bad); stroke-width: 3; }
.node.terminal circle.ring { fill: none; stroke: #57606a; stroke-width: 2.5; }
.node path.mark { fill: none; stroke: #ffffff; stroke-width: 2.4; stroke-linecap: round; stroke-linejoin: round; }
.node rect.mark { fill: #ffffff; }
.node .lbl { font-size: 10px; fill: #57606a; text-anchor: middle; font-variant-numeric: tabular-nums; }
.node.selected circle.body { stroke: var(--ink); stroke-width: 3; }
.node.on-path .lbl { fill: var(--path); font-weight: 600; }
.node:hover circle.body { stroke: var(--ink); }
.badge { cursor: pointer; }
.badge rect { fill: #ffffff; stroke: #8c959f; }
.badge text { font-size: 10px; fill: #57606a; text-anchor: middle; }
.badge:hover rect { stroke: var(--accent); }
"""

JS = r"""
"use strict";
(function () {
  const XGAP = 50, YGAP = 118, LABEL_H = 43, DEFAULT_DEPTH = 3, DEFAULT_BUDGET = 400;
  const MIN_R = 7, MAX_R = 19;
  const INDEX = JSON.parse(document.getElementById("viz-index").textContent);
  const $ = (id) => document.getElementById(id);
  const svg = $("tree"), viewport = $("viewport");
  const prepared = new Map();
  let cur = null;  // the shown tree: {data, byId, root, expanded, selected, ...}
  let pos = new Map();  // node id -> {x, y} of the last render
  const view = { x: 0, y: 0, k: 1 };

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function fmt(x, digits) {
    if (x === null || x === undefined) return "–";
    if (typeof x === "number") return Number.isInteger(x) ? x.toLocaleString("en-US") : x.toFixed(digits === undefined ? 3 : digits);
    return String(x);
  }
  // Q in [0, 1] -> red (0), amber (.5), green (1)
  function qColor(q) {
    const t = Math.max(0, Math.min(1, q));
    const hue = t < 0.5 ? 90 * t : 45 + 170 * (t - 0.5);
    const light = t < 0.5 ? 52 : 52 - 20 * (t - 0.5);
    const sat = t < 0.5 ? 70 + 30 * t : 85 - 60 * (t - 0.5);
    return "hsl(" + hue.toFixed(0) + "," + sat.toFixed(0) + "%," + light.toFixed(0) + "%)";
  }
  function outcomeOf(n) {
    if (!n.terminal) return null;
    return n.outcome === true ? "correct" : n.outcome === false ? "incorrect" : "unverified";
  }

  // ---------------------------------------------------------------------------------------- tree data
  function prepare(it, ti) {
    const key = it + ":" + ti;
    if (prepared.has(key)) return prepared.get(key);
    const data = JSON.parse($("viz-tree-" + it + "-" + ti).textContent);
    const byId = new Map();
    for (const n of data.nodes) byId.set(n.id, n);
    const root = data.nodes.find((n) => n.parent === null);
    // levels by BFS (the stored depth is not trusted for drawing), then subtree sizes bottom-up
    const order = [root];
    root._d = 0;
    for (let i = 0; i < order.length; i++) {
      const n = order[i];
      n._kids = n.children.filter((c) => byId.has(c));
      for (const c of n._kids) { const k = byId.get(c); k._d = n._d + 1; order.push(k); }
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i];
      n._size = 1;
      for (const c of n._kids) n._size += byId.get(c)._size;
    }
    // step/extended pairs name the sibling edges they contrast
    const role = new Map();
    for (const p of data.pairs) {
      if (p.node_id === null || p.node_id === undefined) continue;
      if (byId.has(p.chosen_id)) role.set(p.chosen_id, "chosen");
      if (byId.has(p.rejected_id)) role.set(p.rejected_id, "rejected");
    }
    // open the first levels, breadth first, while few enough nodes are visible
    const expanded = new Set();
    let visible = 1;
    for (const n of order) {
      if (n._d >= DEFAULT_DEPTH || !n._kids.length) continue;
      if (!(n.parent === null || expanded.has(n.parent))) continue;
      if (visible + n._kids.length > DEFAULT_BUDGET && n.parent !== null) continue;
      expanded.add(n.id);
      visible += n._kids.length;
    }
    let maxN = 1;  // sizes are relative to the most visited node (the root, in a search tree)
    for (const n of data.nodes) maxN = Math.max(maxN, n.N || 0);
    const entry = { it, ti, data, byId, root, order, role, expanded, maxN, selected: null };
    prepared.set(key, entry);
    return entry;
  }

  function ancestors(id) {
    const out = [];
    let n = cur.byId.get(id);
    while (n) { out.push(n.id); n = n.parent === null ? null : cur.byId.get(n.parent); }
    return out.reverse();
  }

  // ---------------------------------------------------------------------------------------- layout + draw
  function layout() {
    const out = new Map();
    let slot = 0;
    const stack = [[cur.root.id, false]];
    while (stack.length) {
      const [id, done] = stack.pop();
      const n = cur.byId.get(id);
      const kids = cur.expanded.has(id) ? n._kids : [];
      if (!kids.length) { out.set(id, { x: slot++ * XGAP, y: n._d * YGAP }); continue; }
      if (done) {
        const a = out.get(kids[0]), b = out.get(kids[kids.length - 1]);
        out.set(id, { x: (a.x + b.x) / 2, y: n._d * YGAP });
        continue;
      }
      stack.push([id, true]);
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], false]);
    }
    return out;
  }

  function radius(n) { return MIN_R + (MAX_R - MIN_R) * Math.sqrt(Math.max(0, n.N || 0) / cur.maxN); }

  function render() {
    pos = layout();
    const onPath = new Set(cur.selected === null ? [] : ancestors(cur.selected));
    const edges = [], nodes = [];
    for (const [id, p] of pos) {
      const n = cur.byId.get(id);
      const r = radius(n);
      if (n.parent !== null && pos.has(n.parent)) {
        // from below the parent's labels and toggle to the top of the child
        const q = pos.get(n.parent), y0 = q.y + radius(cur.byId.get(n.parent)) + LABEL_H, y1 = p.y - r - 4;
        const my = (y0 + y1) / 2;
        const role = cur.role.get(id);
        let cls = "edge";
        if (role) cls += " " + role;
        else if (onPath.has(id)) cls += " on-path";
        const w = (role ? 2.5 : 1) + 5 * Math.sqrt(Math.max(0, n.N || 0) / cur.maxN);
        edges.push('<path class="' + cls + '" d="M' + q.x + "," + y0 + "C" + q.x + "," + my + " " + p.x + "," + my +
          " " + p.x + "," + y1 + '" stroke-width="' + w.toFixed(1) + '"/>');
      }
      const outcome = outcomeOf(n);
      let cls = "node";
      if (!n.N) cls += " unvisited";
      if (outcome === "correct" || outcome === "incorrect") cls += " " + outcome;
      else if (outcome === "unverified") cls += " terminal";
      if (onPath.has(id)) cls += " on-path";
      if (id === cur.selected) cls += " selected";
      let mark = "";
      if (outcome === "correct") mark = '<path class="mark" d="M-4,0.5L-1.2,3.3L4.2,-2.6"/>';
      else if (outcome === "incorrect") mark = '<path class="mark" d="M-3.2,-3.2L3.2,3.2M3.2,-3.2L-3.2,3.2"/>';
      else if (outcome === "unverified") mark = '<rect class="mark" x="-2.5" y="-2.5" width="5" height="5"/>';
      const ring = outcome ? '<circle class="ring" r="' + (r + 3).toFixed(1) + '"/>' : "";
      const line1 = id === cur.root.id ? "root" : "Q " + (n.N ? n.Q.toFixed(2) : "–");
      const title = "#" + id + (outcome ? " [" + outcome + "]" : "") + "\n" + (n.text || "(root)").slice(0, 300);
      let badge = "";
      if (n._kids.length) {
        const open = cur.expanded.has(id);
        const txt = open ? "−" : "+" + (n._size - 1);
        const bw = 10 + 6 * txt.length;
        badge = '<g class="badge" data-toggle="' + id + '" transform="translate(0,' + (r + 35).toFixed(1) + ')">' +
          '<rect x="' + (-bw / 2) + '" y="-7.5" width="' + bw + '" height="15" rx="7.5"/><text y="3.5">' + txt + "</text></g>";
      }
      nodes.push('<g class="' + cls + '" data-id="' + id + '" transform="translate(' + p.x + "," + p.y + ')"><title>' +
        esc(title) + '</title><rect class="hit" x="' + (2 - XGAP / 2) + '" y="' + (-r - 4).toFixed(1) + '" width="' + (XGAP - 4) +
        '" height="' + (2 * r + 30).toFixed(1) + '"/>' + ring + '<circle class="body" r="' + r.toFixed(1) + '" fill="' +
        (n.N ? qColor(n.Q) : "#ffffff") + '"/>' + mark + '<text class="lbl" y="' + (r + 13).toFixed(1) + '">' + line1 +
        '</text><text class="lbl" y="' + (r + 25).toFixed(1) + '">N ' + fmt(n.N) + "</text>" + badge + "</g>");
    }
    viewport.innerHTML = '<g class="edges">' + edges.join("") + '</g><g class="nodes">' + nodes.join("") + "</g>";
    $("shown").textContent = pos.size.toLocaleString("en-US") + " of " + cur.data.nodes.length.toLocaleString("en-US") + " nodes shown";
    applyView();
  }

  // ---------------------------------------------------------------------------------------- pan and zoom
  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }
  function zoomAt(sx, sy, f) {
    const k = Math.max(0.02, Math.min(4, view.k * f));
    view.x = sx - (sx - view.x) * (k / view.k);
    view.y = sy - (sy - view.y) * (k / view.k);
    view.k = k;
    applyView();
  }
  function bounds() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const p of pos.values()) { x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y); }
    return { x0: x0 - 30, x1: x1 + 30, y0: y0 - 30, y1: y1 + 60 };
  }
  function fit(minK) {
    const b = bounds(), w = svg.clientWidth, h = svg.clientHeight;
    const k = Math.max(minK || 0.02, Math.min(1.3, w / (b.x1 - b.x0), h / (b.y1 - b.y0)));
    view.k = k;
    const rootX = pos.get(cur.root.id).x;
    // centred when it fits; otherwise the root is centred and the rest is panned to
    view.x = (b.x1 - b.x0) * k <= w ? (w - (b.x1 - b.x0) * k) / 2 - b.x0 * k : w / 2 - rootX * k;
    view.y = (b.y1 - b.y0) * k <= h ? (h - (b.y1 - b.y0) * k) / 2 - b.y0 * k : 40 - b.y0 * k;
    applyView();
  }
  // keep node `id` where it is on screen while the layout around it changes
  function keepInPlace(id, change) {
    const before = pos.get(id);
    change();
    const after = pos.get(id);
    if (before && after) { view.x += (before.x - after.x) * view.k; view.y += (before.y - after.y) * view.k; applyView(); }
  }
  function reveal(id) {
    const p = pos.get(id);
    if (!p) return;
    const sx = p.x * view.k + view.x, sy = p.y * view.k + view.y, w = svg.clientWidth, h = svg.clientHeight;
    if (sx < 40 || sx > w - 40 || sy < 40 || sy > h - 60) { view.x = w / 2 - p.x * view.k; view.y = h / 2 - p.y * view.k; applyView(); }
  }

  let drag = null;
  svg.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
  });
  window.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true;
    svg.classList.add("dragging");
    view.x = drag.vx + dx; view.y = drag.vy + dy;
    applyView();
  });
  window.addEventListener("pointerup", () => {
    svg.classList.remove("dragging");
    if (drag && drag.moved) svg.dataset.justDragged = "1";
    drag = null;
  });
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  svg.addEventListener("click", (e) => {
    if (svg.dataset.justDragged) { delete svg.dataset.justDragged; return; }
    const badge = e.target.closest(".badge");
    if (badge) { toggle(Number(badge.dataset.toggle)); return; }
    const node = e.target.closest(".node");
    if (node) select(Number(node.dataset.id), false);
  });

  // ---------------------------------------------------------------------------------------- actions
  function toggle(id) {
    keepInPlace(id, () => {
      if (cur.expanded.has(id)) cur.expanded.delete(id); else cur.expanded.add(id);
      render();
    });
  }
  function expandAll() {
    for (const n of cur.order) if (n._kids.length) cur.expanded.add(n.id);
    render();
    fit();
  }
  function collapse() {
    cur.expanded = new Set([cur.root.id]);
    render();
    fit(0.35);
  }
  function select(id, center) {
    cur.selected = id;
    const path = ancestors(id);
    let opened = false;
    for (const a of path.slice(0, -1)) if (!cur.expanded.has(a)) { cur.expanded.add(a); opened = true; }
    if (opened) keepInPlace(path[0], render); else render();
    if (center || opened) reveal(id);
    showNode(id);
  }

  // ---------------------------------------------------------------------------------------- side panel
  function pill(outcome) {
    if (outcome === "correct") return '<span class="pill correct">✓ correct</span>';
    if (outcome === "incorrect") return '<span class="pill incorrect">✗ incorrect</span>';
    if (outcome === "unverified") return '<span class="pill open">terminal, not verified</span>';
    return '<span class="pill open">open</span>';
  }
  function kv(rows) {
    return '<table class="kv">' + rows.map(([k, v]) => "<tr><td>" + k + "</td><td>" + v + "</td></tr>").join("") + "</table>";
  }
  function showProblem() {
    const d = cur.data, s = d.stats || {};
    $("problem").innerHTML = '<div class="question">' + esc(d.question || "") + '</div><div class="gold">gold answer: <b>' +
      esc(d.answer === undefined ? "–" : d.answer) + "</b>" + (d.steps ? " · " + esc(d.steps) + " steps" : "") + "</div>";
    const chips = [
      ["search", d.search || "–"], ["nodes", fmt(s.nodes === undefined ? d.nodes.length : s.nodes)], ["depth", fmt(s.depth)],
      ["simulations", fmt(s.simulations)], ["tokens", fmt(s.tokens)], ["root Q", fmt(s.root_q, 2)], ["pairs", fmt(d.pairs.length)],
    ];
    $("stats").innerHTML = chips.map(([k, v]) => '<span class="chip">' + k + " <b>" + esc(v) + "</b></span>").join("") +
      (s.solved === undefined ? "" : s.solved ? '<span class="chip yes">solved</span>' : '<span class="chip no">not solved</span>');
    showPairs();
  }
  function showNode(id) {
    const n = cur.byId.get(id), outcome = outcomeOf(n);
    const path = ancestors(id).map((a) => cur.byId.get(a));
    $("node-title").textContent = id === cur.root.id ? "Root (the prompt)" : "Node #" + id + " · depth " + n._d;
    const role = cur.role.get(id);
    $("node-stats").innerHTML = kv([
      ["N (visits)", fmt(n.N)], ["Q", fmt(n.Q)], ["prior", fmt(n.prior)], ["value", fmt(n.value)],
      ["outcome", pill(outcome)], ["log-prob", fmt(n.logprob, 2)], ["tokens", fmt(n.tokens)],
      ["duplicates", fmt(n.duplicates)], ["evaluations", fmt(n.evaluations)],
      ["children", fmt(n._kids.length) + " (" + fmt(n._size - 1) + " below)"],
    ].concat(role ? [["pair edge", role === "chosen" ? '<span class="pill correct">chosen</span>' : '<span class="pill incorrect">rejected</span>']] : []));
    const steps = path.slice(1).map((p) => {
      const color = p.N ? qColor(p.Q) : "#8c959f";
      return '<div class="step' + (p.id === id ? " current" : "") + '" data-id="' + p.id + '" style="--qc:' + color + '">' +
        '<div class="meta">step ' + p._d + " · #" + p.id + " · Q " + (p.N ? p.Q.toFixed(2) : "–") + " · N " + fmt(p.N) +
        (outcomeOf(p) ? " · " + outcomeOf(p) : "") + '</div><div class="txt">' + esc(p.text) + "</div></div>";
    });
    $("path").innerHTML = '<div class="step" data-id="' + cur.root.id + '"><div class="meta">prompt</div><div class="txt">' +
      esc(cur.data.prompt || cur.data.question || "") + "</div></div>" + steps.join("");
    const rollouts = n.rollouts || [];
    $("rollouts").innerHTML = rollouts.length ? rollouts.map((r, i) =>
      "<details><summary>rollout " + (i + 1) + " · " + pill(r.correct ? "correct" : "incorrect") + " · " + fmt(r.tokens) +
      ' tokens</summary><div class="mono">' + esc(r.text) + "</div></details>").join("") :
      '<div class="empty">no rollouts from this node</div>';
  }
  function showPairs() {
    const pairs = cur.data.pairs;
    if (!pairs.length) { $("pairs").innerHTML = '<div class="empty">no preference pairs from this tree</div>'; return; }
    $("pairs").innerHTML = pairs.map((p, i) => {
      const head = '<b>' + esc(p.kind || "pair") + "</b>";
      if (p.node_id === null || p.node_id === undefined) {
        return '<div class="pair" data-pair="' + i + '">' + head + " · full solutions" +
          '<details><summary><span class="c">chosen</span></summary><div class="mono">' + esc(p.chosen) + "</div></details>" +
          '<details><summary><span class="r">rejected</span></summary><div class="mono">' + esc(p.rejected) + "</div></details></div>";
      }
      return '<div class="pair" data-pair="' + i + '" data-node="' + p.node_id + '">' + head + " at #" + p.node_id +
        ': <span class="c">#' + p.chosen_id + "</span> (Q " + fmt(p.q_chosen, 2) + ", N " + fmt(p.n_chosen) + ') vs <span class="r">#' +
        p.rejected_id + "</span> (Q " + fmt(p.q_rejected, 2) + ", N " + fmt(p.n_rejected) + ")" +
        '<details><summary><span class="c">chosen</span></summary><div class="mono">' + esc(p.chosen) + "</div></details>" +
        '<details><summary><span class="r">rejected</span></summary><div class="mono">' + esc(p.rejected) + "</div></details></div>";
    }).join("");
  }
  $("path").addEventListener("click", (e) => {
    const step = e.target.closest(".step");
    if (step) select(Number(step.dataset.id), true);
  });
  $("pairs").addEventListener("click", (e) => {
    if (e.target.closest("summary") || e.target.closest(".mono")) return;
    const row = e.target.closest(".pair");
    if (!row || row.dataset.node === undefined) return;
    const p = cur.data.pairs[Number(row.dataset.pair)];
    for (const id of [p.chosen_id, p.rejected_id]) if (cur.byId.has(id)) for (const a of ancestors(id).slice(0, -1)) cur.expanded.add(a);
    select(Number(row.dataset.node), true);
  });

  // ---------------------------------------------------------------------------------------- selectors
  function fillProblems() {
    const it = Number($("iteration").value);
    $("problem-select").innerHTML = INDEX.iterations[it].trees.map((t, i) =>
      '<option value="' + i + '">' + (t.solved === true ? "✓ " : t.solved === false ? "✗ " : "") + esc(t.task_id) + " · " +
      fmt(t.nodes) + " nodes</option>").join("");
  }
  function showTree() {
    const it = Number($("iteration").value), ti = Number($("problem-select").value);
    cur = prepare(it, ti);
    render();
    fit(0.35);
    showProblem();
    showNode(cur.selected === null ? cur.root.id : cur.selected);
  }
  $("iteration").innerHTML = INDEX.iterations.map((it, i) =>
    '<option value="' + i + '">' + esc(it.name) + " (" + it.trees.length + " trees)</option>").join("");
  $("iteration").addEventListener("change", () => {
    const task = cur ? cur.data.task_id : null;
    fillProblems();
    const same = INDEX.iterations[Number($("iteration").value)].trees.findIndex((t) => t.task_id === task);
    if (same >= 0) $("problem-select").value = String(same);
    showTree();
  });
  $("problem-select").addEventListener("change", showTree);
  $("expand-all").addEventListener("click", expandAll);
  $("collapse").addEventListener("click", collapse);
  $("fit").addEventListener("click", () => fit());
  $("zoom-in").addEventListener("click", () => zoomAt(svg.clientWidth / 2, svg.clientHeight / 2, 1.25));
  $("zoom-out").addEventListener("click", () => zoomAt(svg.clientWidth / 2, svg.clientHeight / 2, 0.8));
  if (INDEX.iterations.length < 2) $("iteration-label").hidden = true;
  fillProblems();
  showTree();
  document.body.dataset.ready = "1";
})();
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__ · search trees</title>
<style>__CSS__</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <label id="iteration-label">iteration <select id="iteration"></select></label>
  <label>problem <select id="problem-select"></select></label>
  <div class="tools">
    <button id="expand-all" title="show every node">Expand all</button>
    <button id="collapse" title="show only the root's children">Collapse</button>
    <button id="fit" title="fit the shown nodes to the window">Fit</button>
    <button id="zoom-in" title="zoom in">+</button>
    <button id="zoom-out" title="zoom out">−</button>
  </div>
  <div class="statsbar" id="stats"></div>
</header>
<main>
  <div id="canvas">
    <svg id="tree" xmlns="http://www.w3.org/2000/svg"><g id="viewport"></g></svg>
    <div class="legend">
      <span>colour = Q</span><span><span class="ramp" style="display:inline-block"></span> 0 → 1</span>
      <span>size = visits N</span>
      <span><svg width="70" height="20"><circle cx="8" cy="10" r="5" fill="#8c959f"/><circle cx="34" cy="10" r="9" fill="#8c959f"/></svg></span>
      <span>terminal</span>
      <span><svg width="70" height="20">
        <circle cx="10" cy="10" r="7" fill="hsl(130,55%,42%)" stroke="#1a7f37" stroke-width="2.5"/>
        <path d="M7,10.5L9,12.5L13,8" fill="none" stroke="#fff" stroke-width="2"/>
        <circle cx="38" cy="10" r="7" fill="hsl(0,70%,52%)" stroke="#cf222e" stroke-width="2.5"/>
        <path d="M35.5,7.5L40.5,12.5M40.5,7.5L35.5,12.5" fill="none" stroke="#fff" stroke-width="2"/></svg> correct / incorrect</span>
      <span>pair edges</span>
      <span><svg width="70" height="12"><path d="M2,6H30" stroke="#1a7f37" stroke-width="3"/>
        <path d="M38,6H68" stroke="#cf222e" stroke-width="3" stroke-dasharray="6 4"/></svg> chosen / rejected</span>
    </div>
    <div class="hint"><span id="shown"></span> · click a node for its path; +k opens k hidden nodes; drag to pan, wheel to zoom</div>
  </div>
  <aside>
    <h2>Problem</h2>
    <div id="problem"></div>
    <h2 id="node-title">Node</h2>
    <div id="node-stats"></div>
    <h2>Path from the root</h2>
    <div class="path" id="path"></div>
    <h2>Rollouts</h2>
    <div id="rollouts"></div>
    <h2>Preference pairs</h2>
    <div id="pairs"></div>
  </aside>
</main>
__DATA__
<script>__JS__</script>
</body>
</html>
"""
