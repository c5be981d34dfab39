"""The viz inputs and outputs without a browser: loading, the HTML file's data, DOT, text and the CLI."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from vizdata import searched_tree, write_iteration, write_real_search, write_run

from selfimprove.cli import main as cli_main
from selfimprove.io import read_jsonl
from selfimprove.search.tree import tree_stats
from selfimprove.viz import load_input, render_dot, render_html, render_text, write_viewer
from selfimprove.viz.cli import default_html_path
from selfimprove.viz.dot import q_color
from selfimprove.viz.load import short_text
from selfimprove.viz.text import tree_text


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("viz") / "run", {1: [1, 2, 3], 2: [4, 5]}, min_nodes=40)


@pytest.fixture(scope="module")
def real_search(tmp_path_factory, trained_tiny_path) -> Path:
    folder = tmp_path_factory.mktemp("viz_real") / "iter_001"
    write_real_search(trained_tiny_path, folder)
    return folder


def _tree_files(run: Path) -> list[Path]:
    return sorted(run.glob("iter_*/trees/*.json"))


def _embedded(page: str) -> dict[str, dict]:
    """The JSON blocks of a viewer page, parsed strictly (NaN or Infinity would fail, as in JSON.parse)."""

    def reject(constant: str) -> None:
        raise ValueError(f"non-JSON constant {constant}")

    blocks = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, flags=re.S)
    return {key: json.loads(text, parse_constant=reject) for key, text in blocks}


# ---------------------------------------------------------------------------------------------------------
# loading


def test_run_folder_loads_every_iteration_with_trees_and_their_pairs(run_dir: Path):
    data = load_input(run_dir)
    assert data.kind == "run"
    # iter_000 holds only eval.json, so it is not an iteration of the viewer
    assert [it.name for it in data.iterations] == ["iter_001", "iter_002"]
    assert [len(it.trees) for it in data.iterations] == [3, 2]
    for iteration in data.iterations:
        rows = [row for _, row in read_jsonl(run_dir / iteration.name / "pairs.jsonl")]
        assert sum(len(t.pairs) for t in iteration.trees) == len(rows) > 0
        for t in iteration.trees:
            assert all(p["kind"] in ("step", "extended", "full") for p in t.pairs)
            assert len(t.pairs) == sum(row["tree_id"] == t.tree["task_id"] for row in rows)


def test_tree_file_and_iteration_folder_load(run_dir: Path):
    file = run_dir / "iter_002" / "trees" / "synthetic-005.json"
    data = load_input(file)
    assert (data.kind, data.title) == ("tree", "synthetic-005")
    assert [it.name for it in data.iterations] == ["iter_002"]
    tree = data.iterations[0].trees[0]
    assert tree.tree == json.loads(file.read_text())
    rows = [row for _, row in read_jsonl(run_dir / "iter_002" / "pairs.jsonl")]
    assert len(tree.pairs) == sum(row["tree_id"] == "synthetic-005" for row in rows)
    iteration = load_input(run_dir / "iter_001")
    assert iteration.kind == "iteration" and len(iteration.iterations[0].trees) == 3
    assert load_input(run_dir / "iter_001" / "trees").iterations == iteration.iterations


def test_select_by_iteration_and_task(run_dir: Path):
    data = load_input(run_dir)
    assert [it.name for it in data.select(iteration="2").iterations] == ["iter_002"]
    assert [it.name for it in data.select(iteration="iter_001").iterations] == ["iter_001"]
    only = data.select(task="synthetic-004")
    assert [(it.name, [t.name for t in it.trees]) for it in only.iterations] == [
        ("iter_002", ["synthetic-004"])
    ]
    with pytest.raises(ValueError, match=r"no iteration '7'.*iter_001, iter_002"):
        data.select(iteration="7")
    with pytest.raises(ValueError, match="no tree for task 'nope'"):
        data.select(task="nope")


def test_bad_inputs_raise_naming_file_and_node(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_input(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no search trees"):
        load_input(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"task_id": "t", "nodes": [')
    with pytest.raises(ValueError, match=r"bad\.json: malformed JSON"):
        load_input(bad)
    tree = searched_tree(0, min_nodes=6).to_dict("mcts", {})
    del tree["nodes"][3]["Q"]
    bad.write_text(json.dumps(tree))
    with pytest.raises(ValueError, match=r"bad\.json: node #3 lacks \['Q'\]"):
        load_input(bad)
    tree = searched_tree(0, min_nodes=6).to_dict("mcts", {})
    tree["nodes"][1]["children"].append(99)
    bad.write_text(json.dumps(tree))
    with pytest.raises(ValueError, match=r"node 1 links to unknown node\(s\) \[99\]"):
        load_input(bad)
    folder = tmp_path / "iter_001"
    write_iteration(folder, [1], min_nodes=8)
    with (folder / "pairs.jsonl").open("a") as f:
        f.write("{not json\n")
    lines = (folder / "pairs.jsonl").read_text().count("\n")
    with pytest.raises(ValueError, match=rf"pairs\.jsonl:{lines}: malformed JSON"):
        load_input(folder)


def test_non_finite_numbers_and_hostile_text_survive_into_the_page(tmp_path: Path):
    tree = searched_tree(2, min_nodes=10)
    tree.nodes[1].text = "</script><script>alert(1)</script> \u2028 <!-- \x12 \ud800"
    tree.nodes[2].logprob = float("-inf")
    data = tree.to_dict("mcts", tree_stats(tree))
    data["nodes"][3]["Q"] = float("nan")
    file = tmp_path / "trees" / "hostile.json"
    file.parent.mkdir()
    file.write_text(json.dumps(data))  # Python writes NaN and -Infinity, which JSON.parse rejects
    page = render_html(load_input(file))
    page.encode("utf-8")  # a lone surrogate would fail here
    assert "<script>alert(1)" not in page
    embedded = _embedded(page)["viz-tree-0-0"]
    assert embedded["nodes"][1]["text"] == tree.nodes[1].text
    assert embedded["nodes"][2]["logprob"] is None and embedded["nodes"][3]["Q"] is None


# ---------------------------------------------------------------------------------------------------------
# HTML


def test_html_is_self_contained_and_embeds_every_tree(run_dir: Path):
    page = render_html(load_input(run_dir))
    # nothing to fetch: no external scripts, styles, images, imports or requests
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "fetch(" not in page and "XMLHttpRequest" not in page
    assert '<link rel="icon" href="data:,">' in page  # so the browser does not ask for /favicon.ico
    embedded = _embedded(page)
    index = embedded.pop("viz-index")
    assert [it["name"] for it in index["iterations"]] == ["iter_001", "iter_002"]
    files = _tree_files(run_dir)
    assert len(embedded) == len(files) == 5
    for i, iteration in enumerate(index["iterations"]):
        for j, entry in enumerate(iteration["trees"]):
            tree = embedded[f"viz-tree-{i}-{j}"]
            stored = json.loads((run_dir / iteration["name"] / "trees" / f"{entry['name']}.json").read_text())
            assert tree["nodes"] == stored["nodes"] and tree["stats"] == stored["stats"]
            assert entry["nodes"] == len(stored["nodes"]) and entry["solved"] == stored["stats"]["solved"]


def test_write_viewer_writes_viewer_html_into_the_run(run_dir: Path, tmp_path: Path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    out = write_viewer(run)
    assert out == run / "viewer.html"
    assert len(_embedded(out.read_text())) == 1 + 5
    assert default_html_path(run) == run / "viewer.html"
    tree_file = run / "iter_001" / "trees" / "synthetic-001.json"
    assert default_html_path(tree_file) == tree_file.with_suffix(".html")


# ---------------------------------------------------------------------------------------------------------
# DOT and text


def test_q_color_matches_the_viewer_ramp():
    # hsl(0,70%,52%), hsl(45,85%,52%), hsl(130,55%,42%): the three stops of the viewer's legend
    assert [q_color(q) for q in (0.0, 0.5, 1.0)] == ["#da2f2f", "#edb91d", "#30a644"]
    assert q_color(-1.0) == q_color(0.0) and q_color(2.0) == q_color(1.0)


def test_dot_parses_with_every_node_edge_and_pair_edge(run_dir: Path):
    pydot = pytest.importorskip("pydot", reason="pydot (the dev extra) parses the DOT output")
    import networkx as nx

    data = load_input(run_dir).select(iteration="2")  # two trees: pydot's parser is slow
    dot = render_dot(data)
    graphs = pydot.graph_from_dot_data(dot)
    assert graphs is not None and len(graphs) == 1
    # networkx's from_pydot reads only the top level, so walk the clusters here
    graph = nx.DiGraph()
    pending = [graphs[0]]
    while pending:
        g = pending.pop()
        pending += g.get_subgraph_list()
        for node in g.get_node_list():
            if node.get_name() not in ("node", "edge", "graph"):  # the default-attribute statements
                graph.add_node(node.get_name(), **node.get_attributes())
        for edge in g.get_edge_list():
            graph.add_edge(edge.get_source(), edge.get_destination(), **edge.get_attributes())
    trees = [t for it in data.iterations for t in it.trees]
    assert graph.number_of_nodes() == sum(len(t.tree["nodes"]) for t in trees)
    assert graph.number_of_edges() == sum(len(t.tree["nodes"]) - 1 for t in trees)
    assert nx.number_weakly_connected_components(graph) == len(trees)
    for i, iteration in enumerate(data.iterations):
        for j, t in enumerate(iteration.trees):
            for node in t.tree["nodes"]:
                if node["parent"] is not None:
                    assert graph.has_edge(f"i{i}_t{j}_{node['parent']}", f"i{i}_t{j}_{node['id']}")
    labels = [attrs.get("label", "").strip('"') for _, _, attrs in graph.edges(data=True)]
    step_pairs = [p for t in trees for p in t.pairs if p["node_id"] is not None]
    chosen = {(id(t), p["chosen_id"]) for t in trees for p in t.pairs if p["node_id"] is not None}
    rejected = {(id(t), p["rejected_id"]) for t in trees for p in t.pairs if p["node_id"] is not None}
    assert step_pairs and labels.count("chosen") == len(chosen) and labels.count("rejected") == len(rejected)


def test_dot_renders_with_graphviz_when_installed(run_dir: Path):
    if shutil.which("dot") is None:
        pytest.skip("graphviz `dot` is not installed; the DOT is checked with pydot above")
    svg = subprocess.run(
        ["dot", "-Tsvg"], input=render_dot(load_input(run_dir)), capture_output=True, text=True, check=True
    ).stdout
    nodes = sum(len(json.loads(f.read_text())["nodes"]) for f in _tree_files(run_dir))
    assert svg.count('class="node"') == nodes


def _plain(renderable) -> str:
    console = Console(width=220, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_text_lists_every_node_with_q_and_n(run_dir: Path):
    data = load_input(run_dir)
    trees = [t for it in data.iterations for t in it.trees]
    rendered = render_text(data)
    assert len(rendered) == len(trees)
    for t, renderable in zip(trees, rendered, strict=True):
        text = _plain(renderable)
        assert text.count("\n") == len(t.tree["nodes"]) + 1  # the heading, then one line per node
        assert "root  Q=" in text
        lines = {int(m[1]): m for m in re.finditer(r"#(\d+)  Q=\s*([-\d.]+)\s*N=(\d+)", text)}
        assert sorted(lines) == [n["id"] for n in t.tree["nodes"][1:]]
        for node in t.tree["nodes"][1:]:
            match = lines[node["id"]]
            assert int(match[3]) == node["N"]
            assert match[2] == (f"{node['Q']:.2f}" if node["N"] else "-")
        step_pairs = [p for p in t.pairs if p["node_id"] is not None]
        assert text.count("[chosen]") == len({p["chosen_id"] for p in step_pairs})
        assert text.count("[rejected]") == len({p["rejected_id"] for p in step_pairs})


def test_text_shows_model_text_literally():
    tree = searched_tree(3, min_nodes=6)
    tree.nodes[1].text = "[bold red]not markup[/] \\[x]\nsecond line"
    text = _plain(tree_text(tree.to_dict("mcts", tree_stats(tree)), [], "t"))
    assert "[bold red]not markup[/] \\[x] second line" in text
    assert short_text("a\x00b\n\nc", 10) == "a\ufffdb c" and short_text("x" * 20, 10) == "x" * 9 + "…"


# ---------------------------------------------------------------------------------------------------------
# the CLI, on a real search by the trained tiny model


def test_cli_on_a_real_search(real_search: Path, tmp_path: Path, capsys):
    trees = [json.loads(f.read_text()) for f in sorted((real_search / "trees").glob("*.json"))]
    assert len(trees) == 2
    assert cli_main(["viz", str(real_search)]) == 0
    page = (real_search / "viewer.html").read_text()
    embedded = _embedded(page)
    assert [embedded[f"viz-tree-0-{j}"]["nodes"] for j in range(2)] == [t["nodes"] for t in trees]

    assert cli_main(["viz", str(real_search), "--format", "text"]) == 0
    out = capsys.readouterr().out
    for tree in trees:
        assert all(f"#{n['id']}  Q=" in out for n in tree["nodes"][1:])

    dot_file = tmp_path / "trees.dot"
    assert cli_main(["viz", str(real_search), "--format", "dot", "-o", str(dot_file)]) == 0
    assert dot_file.read_text().count(" -> ") == sum(len(t["nodes"]) - 1 for t in trees)
    text_file = tmp_path / "trees.txt"
    assert cli_main(["viz", str(real_search), "--format", "text", "-o", str(text_file)]) == 0
    assert text_file.read_text().count("#") >= sum(len(t["nodes"]) - 1 for t in trees)
    capsys.readouterr()

    assert cli_main(["viz", str(tmp_path / "nowhere")]) == 2
    assert "selfimprove viz: error:" in capsys.readouterr().err
