"""The viewer page's static parts: HTML skeleton, CSS and JavaScript, kept as Python strings.

Kept in a module rather than package data so an installed wheel needs no data files, and the page stays
one self-contained file: no CDN, no fetch, nothing loaded from the network. `html.py` fills PAGE's
placeholders: the title, CSS, JS, and the JSON script blocks holding the data.

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
.legend .how { grid-column: 1 / 3; border-top: 1px solid var(--line); padding-top: 3px; max-width: 290px; }
#shown { color: var(--muted); align-self: center; }
#kg-link { align-self: center; color: var(--accent); }
aside { width: 440px; max-width: 45%; overflow-y: auto; background: var(--panel);
  border-left: 1px solid var(--line); padding: 12px 16px 24px; }
aside h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 16px 0 6px; }
aside h2:first-child { margin-top: 0; }
aside h3 { font-size: 12px; margin: 10px 0 3px; color: var(--muted); }
#round .r { color: var(--bad); }
.question { white-space: pre-wrap; }
.gold { color: var(--muted); margin-top: 4px; }
table.kv { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.kv td { padding: 2px 6px 2px 0; border-bottom: 1px solid #eaeef2; vertical-align: top; }
.actions { margin-top: 6px; }
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
.pair { border: 1px solid var(--line); border-radius: 6px; padding: 5px 8px; margin-bottom: 5px; }
.pair.linked .pair-head { cursor: pointer; }
.pair.linked .pair-head:hover { color: var(--accent); }
.pair .c { color: var(--good); font-weight: 600; }
.pair .r { color: var(--bad); font-weight: 600; }
details { margin: 3px 0; }
summary { cursor: pointer; color: var(--muted); }
/* the tree */
.edge { fill: none; stroke: #afb8c1; stroke-linecap: round; pointer-events: none; }
.edge.on-path { stroke: var(--path); }
.edge.chosen { stroke: var(--good); stroke-opacity: .9; }
.edge.rejected { stroke: var(--bad); stroke-opacity: .9; stroke-dasharray: 7 5; }
.node { cursor: pointer; pointer-events: bounding-box; }
.node circle { stroke: #ffffff; stroke-width: 1.5; }
.node.unvisited circle { stroke: #8c959f; stroke-dasharray: 2 2; }
.node.correct circle { stroke: var(--good); stroke-width: 3.5; }
.node.incorrect circle { stroke: var(--bad); stroke-width: 3.5; }
.node.unverified circle { stroke: #57606a; stroke-width: 3; }
.node path.mark { fill: none; stroke: #ffffff; stroke-width: 2.4; stroke-linecap: round;
  stroke-linejoin: round; }
.node.unvisited path.mark { stroke: #57606a; }
.node rect.mark { fill: #57606a; }
.node .lbl { font-size: 10px; fill: #57606a; text-anchor: middle; font-variant-numeric: tabular-nums; }
.node circle.halo { fill: none; stroke: var(--path); stroke-width: 3; }
.node.on-path .lbl { fill: var(--path); font-weight: 600; }
.node:hover circle { stroke: var(--ink); }
.badge { cursor: pointer; }
.badge rect { fill: #ffffff; stroke: #8c959f; }
.badge text { font-size: 10px; fill: #57606a; text-anchor: middle; }
.badge:hover rect { stroke: var(--accent); }
"""

JS = r"""
"use strict";
(function () {
  const XGAP = 50, YGAP = 118, LABEL_H = 43;  // px between leaf slots, between levels, under a node
  const MIN_R = 7, MAX_R = 19;  // node radius grows with sqrt(N / N_max)
  const DEFAULT_DEPTH = 3, DEFAULT_BUDGET = 400;  // what a tree opens with
  const COMPACT_ABOVE = 1200;  // beyond this many shown nodes, draw dots only (no labels or toggles)
  const INDEX = JSON.parse(document.getElementById("viz-index").textContent);
  const $ = (id) => document.getElementById(id);
  const svg = $("tree"), viewport = $("viewport");
  const prepared = new Map();
  let cur = null;  // the shown tree: {data, byId, root, order, role, expanded, maxN, selected}
  let pos = new Map();  // node id -> {x, y} of the last render
  const view = { x: 0, y: 0, k: 1 };

  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  function fmt(x, digits) {
    if (x === null || x === undefined) return "–";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return x.toLocaleString("en-US");
    return x.toFixed(digits === undefined ? 3 : digits);
  }
  const fmtQ = (n) => (n.N ? n.Q.toFixed(2) : "–");
  // Q in [0, 1] -> red (0), amber (.5), green (1); the same formula as viz/dot.py's q_color
  function qColor(q) {
    const t = Math.max(0, Math.min(1, q));
    const lo = t < 0.5;
    const hue = lo ? 90 * t : 45 + 170 * (t - 0.5);
    const sat = lo ? 70 + 30 * t : 85 - 60 * (t - 0.5);
    const light = lo ? 52 : 52 - 20 * (t - 0.5);
    return "hsl(" + hue.toFixed(0) + "," + sat.toFixed(0) + "%," + light.toFixed(0) + "%)";
  }
  // every refinement round is verified, not only the last of its chain
  const isRound = (n) => n.round !== undefined && n.round !== null;
  function outcomeOf(n) {
    if (!n.terminal && !isRound(n)) return null;
    return n.outcome === true ? "correct" : n.outcome === false ? "incorrect" : "unverified";
  }

  // ------------------------------------------------------------------------------------ tree data
  function prepare(it, ti) {
    const key = it + ":" + ti;
    if (prepared.has(key)) return prepared.get(key);
    const data = JSON.parse($("viz-tree-" + it + "-" + ti).textContent);
    const byId = new Map();
    for (const n of data.nodes) byId.set(n.id, n);
    const root = data.nodes.find((n) => n.parent === null);
    // levels breadth first (drawing does not trust the stored depth), then subtree sizes bottom-up
    const order = [root];
    root._d = 0;
    for (let i = 0; i < order.length; i++) {
      const n = order[i];
      n._kids = n.children.filter((c) => byId.has(c));
      for (const c of n._kids) {
        const kid = byId.get(c);
        kid._d = n._d + 1;
        order.push(kid);
      }
    }
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i];
      n._size = 1;
      for (const c of n._kids) n._size += byId.get(c)._size;
    }
    // step and extended pairs name the two sibling edges they contrast
    const role = new Map();
    for (const p of data.pairs) {
      if (p.node_id === null || p.node_id === undefined) continue;
      if (byId.has(p.chosen_id)) role.set(p.chosen_id, "chosen");
      if (byId.has(p.rejected_id)) role.set(p.rejected_id, "rejected");
    }
    // open the first levels, breadth first, while few enough nodes are visible
    const expanded = new Set([root.id]);
    let visible = 1 + root._kids.length;
    for (const n of order) {
      if (n === root || n._d >= DEFAULT_DEPTH || !n._kids.length || !expanded.has(n.parent)) continue;
      if (visible + n._kids.length > DEFAULT_BUDGET) continue;
      expanded.add(n.id);
      visible += n._kids.length;
    }
    let maxN = 1;  // sizes are relative to the most visited node (the root, in a search tree)
    for (const n of data.nodes) maxN = Math.max(maxN, n.N || 0);
    const entry = { data, byId, root, order, role, expanded, maxN, selected: null };
    prepared.set(key, entry);
    return entry;
  }

  function ancestors(id) {
    const out = [];
    for (let n = cur.byId.get(id); n; n = n.parent === null ? null : cur.byId.get(n.parent)) out.push(n.id);
    return out.reverse();
  }

  // ------------------------------------------------------------------------------------ layout + draw
  // Tidy top-down layout: leaves on consecutive slots, each parent centred over its first and last child.
  function layout() {
    const out = new Map();
    let slot = 0;
    const stack = [[cur.root.id, false]];
    while (stack.length) {
      const [id, done] = stack.pop();
      const n = cur.byId.get(id);
      const kids = cur.expanded.has(id) ? n._kids : [];
      if (!kids.length) {
        out.set(id, { x: slot++ * XGAP, y: n._d * YGAP });
      } else if (done) {
        const a = out.get(kids[0]), b = out.get(kids[kids.length - 1]);
        out.set(id, { x: (a.x + b.x) / 2, y: n._d * YGAP });
      } else {
        stack.push([id, true]);
        for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], false]);
      }
    }
    return out;
  }

  const radius = (n) => MIN_R + (MAX_R - MIN_R) * Math.sqrt(Math.max(0, n.N || 0) / cur.maxN);
  const MARKS = {
    correct: '<path class="mark" d="M-4,0.5L-1.2,3.3L4.2,-2.6"/>',
    incorrect: '<path class="mark" d="M-3.2,-3.2L3.2,3.2M3.2,-3.2L-3.2,3.2"/>',
    unverified: '<rect class="mark" x="-2.5" y="-2.5" width="5" height="5"/>',
  };

  function edgeSvg(n, p, onPath, compact) {
    const q = pos.get(n.parent);
    // from below the parent's labels and toggle to the top of the child
    const y0 = q.y + (compact ? 0 : radius(cur.byId.get(n.parent)) + LABEL_H);
    const y1 = p.y - (compact ? 0 : radius(n) + 4);
    const my = (y0 + y1) / 2;
    const role = cur.role.get(n.id);
    const cls = "edge" + (role ? " " + role : onPath.has(n.id) ? " on-path" : "");
    const w = (role ? 2.5 : 1) + 5 * Math.sqrt(Math.max(0, n.N || 0) / cur.maxN);
    return '<path class="' + cls + '" stroke-width="' + w.toFixed(1) + '" d="M' + q.x + "," + y0 +
      "C" + q.x + "," + my + " " + p.x + "," + my + " " + p.x + "," + y1 + '"/>';
  }

  function nodeSvg(n, p, onPath, compact) {
    const r = radius(n), outcome = outcomeOf(n);
    let cls = "node";
    if (!n.N) cls += " unvisited";
    if (outcome) cls += " " + outcome;
    if (onPath.has(n.id)) cls += " on-path";
    if (n.id === cur.selected) cls += " selected";
    let out = '<g class="' + cls + '" data-id="' + n.id + '" transform="translate(' + p.x + "," + p.y + ')">';
    if (n.id === cur.selected) out += '<circle class="halo" r="' + (r + 6).toFixed(1) + '"/>';
    out += '<circle r="' + r.toFixed(1) + '" fill="' + (n.N ? qColor(n.Q) : "#ffffff") + '"/>';
    if (outcome) out += MARKS[outcome];
    if (compact) return out + "</g>";
    const line1 = n === cur.root ? "root" : isRound(n) ? "round " + fmt(n.round) : "Q " + fmtQ(n);
    const line2 = isRound(n) ? "chain " + fmt(n.chain) : "N " + fmt(n.N);
    out += '<text class="lbl" y="' + (r + 13).toFixed(1) + '">' + line1 + "</text>";
    out += '<text class="lbl" y="' + (r + 25).toFixed(1) + '">' + esc(line2) + "</text>";
    if (n._kids.length) {
      const txt = cur.expanded.has(n.id) ? "−" : "+" + (n._size - 1);
      const bw = 10 + 6 * txt.length;
      out += '<g class="badge" data-toggle="' + n.id + '" transform="translate(0,' + (r + 35).toFixed(1) +
        ')">' +
        '<rect x="' + -bw / 2 + '" y="-7.5" width="' + bw + '" height="15" rx="7.5"/>' +
        '<text y="3.5">' + txt + "</text></g>";
    }
    return out + "</g>";
  }

  function render() {
    pos = layout();
    const compact = pos.size > COMPACT_ABOVE;
    const onPath = new Set(cur.selected === null ? [] : ancestors(cur.selected));
    const edges = [], nodes = [];
    for (const [id, p] of pos) {
      const n = cur.byId.get(id);
      if (n.parent !== null) edges.push(edgeSvg(n, p, onPath, compact));
      nodes.push(nodeSvg(n, p, onPath, compact));
    }
    viewport.innerHTML = '<g class="edges">' + edges.join("") + "</g>" + nodes.join("");
    svg.classList.toggle("compact", compact);
    $("shown").textContent = fmt(pos.size) + " of " + fmt(cur.data.nodes.length) + " nodes shown" +
      (compact ? ", labels hidden above " + fmt(COMPACT_ABOVE) : "");
    applyView();
  }

  // ------------------------------------------------------------------------------------ pan and zoom
  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }
  function zoomAt(sx, sy, f) {
    const k = Math.max(0.004, Math.min(4, view.k * f));
    view.x = sx - (sx - view.x) * (k / view.k);
    view.y = sy - (sy - view.y) * (k / view.k);
    view.k = k;
    applyView();
  }
  // the shown nodes fitted into the canvas above the legend, zoomed no further out than `minK`
  function fit(minK) {
    let x0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const p of pos.values()) {
      x0 = Math.min(x0, p.x);
      x1 = Math.max(x1, p.x);
      y1 = Math.max(y1, p.y);
    }
    x0 -= 30;
    x1 += 30;
    const y0 = -30;
    y1 += 70;
    const w = svg.clientWidth, h = svg.clientHeight - 90;
    view.k = Math.max(minK || 0.004, Math.min(1.3, w / (x1 - x0), h / (y1 - y0)));
    const rootX = pos.get(cur.root.id).x;
    // centred when it fits; otherwise the root is centred and the rest is a pan away
    view.x = (x1 - x0) * view.k <= w ? (w - (x1 - x0) * view.k) / 2 - x0 * view.k : w / 2 - rootX * view.k;
    view.y = 16 - y0 * view.k;  // the root at the top
    applyView();
  }
  // keep node `id` where it is on screen while the layout around it changes
  function keepInPlace(id, change) {
    const before = pos.get(id);
    change();
    const after = pos.get(id);
    if (!before || !after) return;
    view.x += (before.x - after.x) * view.k;
    view.y += (before.y - after.y) * view.k;
    applyView();
  }
  function reveal(id) {
    const p = pos.get(id);
    if (!p) return;
    const w = svg.clientWidth, h = svg.clientHeight;
    const sx = p.x * view.k + view.x, sy = p.y * view.k + view.y;
    if (sx > 40 && sx < w - 40 && sy > 40 && sy < h - 110) return;
    view.x = w / 2 - p.x * view.k;
    view.y = h / 2 - p.y * view.k;
    applyView();
  }

  let drag = null, dragged = false;
  svg.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
    dragged = false;
  });
  window.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!dragged && Math.abs(dx) + Math.abs(dy) < 4) return;
    dragged = true;
    svg.classList.add("dragging");
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    applyView();
  });
  window.addEventListener("pointerup", () => {
    svg.classList.remove("dragging");
    drag = null;
  });
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  svg.addEventListener("click", (e) => {
    if (dragged) return;  // the end of a pan, not a click
    const badge = e.target.closest(".badge");
    if (badge) return toggle(Number(badge.dataset.toggle));
    const node = e.target.closest(".node");
    if (node) select(Number(node.dataset.id), false);
  });

  // ------------------------------------------------------------------------------------ actions
  function toggle(id) {
    keepInPlace(id, () => {
      if (cur.expanded.has(id)) cur.expanded.delete(id);
      else cur.expanded.add(id);
      render();
    });
    if (id === cur.selected) showNode(id);
  }
  function expandBelow(id) {
    const stack = [cur.byId.get(id)];
    while (stack.length) {
      const n = stack.pop();
      if (!n._kids.length) continue;
      cur.expanded.add(n.id);
      for (const c of n._kids) stack.push(cur.byId.get(c));
    }
  }
  function expandAll() {
    expandBelow(cur.root.id);
    render();
    fit(0.25);  // a wide tree stays readable as dots, root at the top; pan along it
  }
  function collapseAll() {
    cur.expanded = new Set([cur.root.id]);
    render();
    fit(0.35);
  }
  function select(id, center) {
    cur.selected = id;
    const path = ancestors(id);
    const closed = path.slice(0, -1).filter((a) => !cur.expanded.has(a));
    for (const a of closed) cur.expanded.add(a);
    keepInPlace(path[0], render);
    if (center || closed.length) reveal(id);
    showNode(id);
  }

  // ------------------------------------------------------------------------------------ side panel
  const PILLS = {
    correct: '<span class="pill correct">✓ correct</span>',
    incorrect: '<span class="pill incorrect">✗ incorrect</span>',
    unverified: '<span class="pill open">terminal, not verified</span>',
    null: '<span class="pill open">open</span>',
  };
  const kv = (rows) => '<table class="kv">' +
    rows.map(([k, v]) => "<tr><td>" + k + "</td><td>" + v + "</td></tr>").join("") + "</table>";
  const details = (cls, title, text) => '<details><summary><span class="' + cls + '">' + title +
    '</span></summary><div class="mono">' + esc(text) + "</div></details>";

  function showProblem() {
    const d = cur.data, s = d.stats || {};
    $("problem").innerHTML = '<div class="question">' + esc(d.question || "") + "</div>" +
      '<div class="gold">gold answer: <b>' + esc(d.answer === undefined ? "–" : d.answer) + "</b>" +
      (d.steps ? " · " + esc(d.steps) + (d.steps === 1 ? " step" : " steps") : "") + "</div>";
    const chips = [
      ["search", d.search || "–"], ["nodes", fmt(s.nodes === undefined ? d.nodes.length : s.nodes)],
      ["depth", fmt(s.depth)], ["simulations", fmt(s.simulations)], ["tokens", fmt(s.tokens)],
      ["root Q", fmt(s.root_q, 2)], ["pairs", fmt(d.pairs.length)],
    ];
    if (d.structure === "refinement") {
      chips.splice(3, 1, ["chains", fmt(s.chains)], ["rounds", fmt(s.rounds)], ["fixed", fmt(s.fixed)],
        ["malformed", fmt(s.malformed)]);
    }
    let solved = "";
    if (s.solved === true) solved = '<span class="chip yes">solved</span>';
    if (s.solved === false) solved = '<span class="chip no">not solved</span>';
    $("stats").innerHTML = chips.map(([k, v]) => '<span class="chip">' + k + " <b>" + esc(v) + "</b></span>")
      .join("") + solved;
    showPairs();
  }

  function showNode(id) {
    const n = cur.byId.get(id);
    $("node-title").textContent = n === cur.root ? "Root (the prompt)" : isRound(n) ?
      "Round " + n.round + " of chain " + n.chain + " · node #" + id : "Node #" + id + " · depth " + n._d;
    const role = cur.role.get(id);
    const rows = [
      ["N (visits)", fmt(n.N)], ["Q", fmt(n.Q)], ["prior", fmt(n.prior)], ["value", fmt(n.value)],
      ["outcome", PILLS[outcomeOf(n)]], ["log-prob", fmt(n.logprob, 2)], ["tokens", fmt(n.tokens)],
      ["duplicates", fmt(n.duplicates)], ["evaluations", fmt(n.evaluations)],
      ["children", fmt(n._kids.length) + " (" + fmt(n._size - 1) + " nodes below)"],
    ];
    if (role) rows.push(["pair edge", role === "chosen" ? PILLS.correct.replace("✓ correct", "chosen") :
      PILLS.incorrect.replace("✗ incorrect", "rejected")]);
    $("node-stats").innerHTML = kv(rows);
    showRound(n);
    $("node-actions").hidden = !n._kids.length;
    $("toggle-node").textContent = cur.expanded.has(id) ? "Collapse" : "Expand";
    const steps = ancestors(id).slice(1).map((a) => {
      const p = cur.byId.get(a), o = outcomeOf(p);
      return '<div class="step' + (a === id ? " current" : "") + '" data-id="' + a + '" style="--qc:' +
        (p.N ? qColor(p.Q) : "#8c959f") + '"><div class="meta">' +
        (isRound(p) ? "round " + p.round + " · chain " + p.chain : "step " + p._d) + " · #" + a +
        " · Q " + fmtQ(p) + " · N " + fmt(p.N) + (o ? " · " + o : "") + '</div><div class="txt">' +
        esc(p.text) + "</div></div>";
    });
    $("path").innerHTML = '<div class="step" data-id="' + cur.root.id + '"><div class="meta">prompt</div>' +
      '<div class="txt">' + esc(cur.data.prompt || cur.data.question || "") + "</div></div>" + steps.join("");
    const rollouts = n.rollouts || [];
    $("rollouts").innerHTML = rollouts.map((r, i) => "<details><summary>rollout " + (i + 1) + " · " +
      PILLS[r.correct ? "correct" : "incorrect"] + " · " + fmt(r.tokens) + " tokens</summary>" +
      '<div class="mono">' + esc(r.text) + "</div></details>").join("") ||
      '<div class="empty">no rollouts from this node</div>';
  }

  // a refinement round: its reflection on the previous round, refined thinking, answer and verdict
  function showRound(n) {
    $("round-title").hidden = $("round").hidden = !isRound(n);
    if (!isRound(n)) return;
    const part = (title, text) => "<h3>" + title + "</h3>" + (text === null || text === undefined ?
      '<div class="empty">none</div>' : '<div class="mono">' + esc(text) + "</div>");
    const issues = n.issues || [];
    $("round").innerHTML = kv([
      ["verdict", PILLS[outcomeOf(n)] + " " + esc(n.verdict === null || n.verdict === undefined ? "" :
        n.verdict)],
      ["answer given", esc(n.predicted === null || n.predicted === undefined ? "–" : n.predicted)],
      ["format", n.well_formed ? "well formed" : '<span class="r">' + esc(issues.join("; ")) + "</span>"],
    ]) + (n.round > 0 ? part("Reflection", n.reflection) : "") + part("Thinking", n.thinking) +
      part("Answer", n.answer);
  }

  function showPairs() {
    const pairs = cur.data.pairs;
    $("pairs").innerHTML = pairs.map((p, i) => {
      const texts = details("c", "chosen", p.chosen) + details("r", "rejected", p.rejected);
      const kind = "<b>" + esc(p.kind || "pair") + "</b>";
      if (p.node_id === null || p.node_id === undefined) {
        return '<div class="pair" data-pair="' + i + '"><div class="pair-head">' + kind +
          " · full solutions</div>" + texts + "</div>";
      }
      return '<div class="pair linked" data-pair="' + i + '" data-node="' + p.node_id + '">' +
        '<div class="pair-head">' + kind + " at #" + p.node_id + ': <span class="c">#' + p.chosen_id +
        "</span> (Q " + fmt(p.q_chosen, 2) + ", N " + fmt(p.n_chosen) + ') vs <span class="r">#' +
        p.rejected_id + "</span> (Q " + fmt(p.q_rejected, 2) + ", N " + fmt(p.n_rejected) + ")" +
        (p.rounds ? " · rounds " + esc(p.rounds.join(" → ")) + (p.fixed ? ", fixed by refining" : "") : "") +
        "</div>" +
        texts + "</div>";
    }).join("") || '<div class="empty">no preference pairs from this tree</div>';
  }

  $("path").addEventListener("click", (e) => {
    const step = e.target.closest(".step");
    if (step) select(Number(step.dataset.id), true);
  });
  $("pairs").addEventListener("click", (e) => {
    const row = e.target.closest(".pair.linked");
    if (!e.target.closest(".pair-head") || !row) return;
    const p = cur.data.pairs[Number(row.dataset.pair)];
    // open the pair's parent so both contrasted edges are drawn
    if (cur.byId.has(p.node_id)) cur.expanded.add(p.node_id);
    select(Number(row.dataset.node), true);
  });
  $("toggle-node").addEventListener("click", () => toggle(cur.selected));
  $("expand-node").addEventListener("click", () => {
    keepInPlace(cur.selected, () => {
      expandBelow(cur.selected);
      render();
    });
    showNode(cur.selected);
  });

  // ------------------------------------------------------------------------------------ selectors
  function fillProblems() {
    const trees = INDEX.iterations[Number($("iteration").value)].trees;
    $("problem-select").innerHTML = trees.map((t, i) => '<option value="' + i + '">' +
      (t.solved === true ? "✓ " : t.solved === false ? "✗ " : "") + esc(t.task_id) + " · " +
      fmt(t.nodes) + " nodes</option>").join("");
  }
  function showTree() {
    const knowledge = INDEX.iterations[Number($("iteration").value)].knowledge;
    $("kg-link").hidden = !knowledge;
    if (knowledge) $("kg-link").setAttribute("href", knowledge);
    cur = prepare(Number($("iteration").value), Number($("problem-select").value));
    if (cur.selected === null) cur.selected = cur.root.id;
    render();
    fit(0.35);
    showProblem();
    showNode(cur.selected);
  }
  $("iteration").innerHTML = INDEX.iterations.map((it, i) => '<option value="' + i + '">' + esc(it.name) +
    " (" + it.trees.length + (it.trees.length === 1 ? " tree" : " trees") + ")</option>").join("");
  $("iteration").addEventListener("change", () => {
    const task = cur ? cur.data.task_id : null;  // stay on the same problem when the new iteration has it
    fillProblems();
    const same = INDEX.iterations[Number($("iteration").value)].trees.findIndex((t) => t.task_id === task);
    if (same >= 0) $("problem-select").value = String(same);
    showTree();
  });
  $("problem-select").addEventListener("change", showTree);
  $("expand-all").addEventListener("click", expandAll);
  $("collapse").addEventListener("click", collapseAll);
  $("fit").addEventListener("click", () => fit());
  $("zoom-in").addEventListener("click", () => zoomAt(svg.clientWidth / 2, svg.clientHeight / 2, 1.25));
  $("zoom-out").addEventListener("click", () => zoomAt(svg.clientWidth / 2, svg.clientHeight / 2, 0.8));
  $("iteration-label").hidden = INDEX.iterations.length < 2;
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
    <span id="shown"></span>
    <a id="kg-link" hidden title="this iteration's knowledge graph (PRefLexOR)">knowledge graph</a>
  </div>
  <div class="statsbar" id="stats"></div>
</header>
<main>
  <div id="canvas">
    <svg id="tree" xmlns="http://www.w3.org/2000/svg"><g id="viewport"></g></svg>
    <div class="legend">
      <span>colour = Q</span><span><span class="ramp" style="display:inline-block"></span> 0 → 1</span>
      <span>size = visits N</span>
      <span><svg width="70" height="20"><circle cx="8" cy="10" r="5" fill="#8c959f"/>
        <circle cx="34" cy="10" r="9" fill="#8c959f"/></svg></span>
      <span>terminal</span>
      <span><svg width="70" height="20">
        <circle cx="10" cy="10" r="7" fill="hsl(130,55%,42%)" stroke="#1a7f37" stroke-width="3"/>
        <path d="M7,10.5L9,12.5L13,8" fill="none" stroke="#fff" stroke-width="2"/>
        <circle cx="38" cy="10" r="7" fill="hsl(0,70%,52%)" stroke="#cf222e" stroke-width="3"/>
        <path d="M35.5,7.5L40.5,12.5M40.5,7.5L35.5,12.5" fill="none" stroke="#fff" stroke-width="2"/></svg>
        correct / incorrect</span>
      <span>pair edges</span>
      <span><svg width="70" height="12"><path d="M2,6H30" stroke="#1a7f37" stroke-width="3"/>
        <path d="M38,6H68" stroke="#cf222e" stroke-width="3" stroke-dasharray="6 4"/></svg>
        chosen / rejected</span>
      <span class="how">click a node for its path · +k shows k hidden nodes ·
        drag to pan, wheel to zoom</span>
    </div>
  </div>
  <aside>
    <h2>Problem</h2>
    <div id="problem"></div>
    <h2 id="node-title">Node</h2>
    <div id="node-stats"></div>
    <div class="actions" id="node-actions">
      <button id="toggle-node">Collapse</button> <button id="expand-node">Expand everything below</button>
    </div>
    <h2 id="round-title" hidden>Refinement round</h2>
    <div id="round" hidden></div>
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
