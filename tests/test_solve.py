"""`selfimprove solve` on the trained tiny test model: every round of every chain shown, the vote, the gold
check, retrieval from a saved knowledge graph, and argument errors."""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove.cli import main

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def _solve(model: Path, *extra: str) -> int:
    return main(["solve", "--model", str(model), "--question", QUESTION, "--max-tokens", "32", *extra])


def _rounds(path: Path) -> list[dict]:
    return [n for n in json.loads(path.read_text())["nodes"] if n["parent"] is not None]


def test_solve_without_gold_shows_every_round_and_votes(trained_tiny_path, tmp_path, capsys):
    out_file = tmp_path / "tree.json"
    assert _solve(trained_tiny_path, "--rounds", "2", "--n", "2", "--out", str(out_file)) == 0
    out = capsys.readouterr().out
    for text in ("chain 0", "chain 1", "round 0", "round 1", "unverified", "self-consistency vote"):
        assert text in out, text
    rounds = _rounds(out_file)
    # without a gold answer nothing is verified, so every chain runs every round
    assert sorted((n["chain"], n["round"]) for n in rounds) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(n["outcome"] is None for n in rounds)
    assert "2 generate calls" in out


def test_solve_with_gold_verifies_every_round(trained_tiny_path, tmp_path, capsys):
    out_file = tmp_path / "tree.json"
    assert (
        _solve(trained_tiny_path, "--answer", "7", "--rounds", "2", "--n", "3", "--out", str(out_file)) == 0
    )
    out = capsys.readouterr().out
    rounds = _rounds(out_file)
    assert len(rounds) == 6  # solve never stops a chain early: it shows every round
    assert all(n["outcome"] in (True, False) for n in rounds)
    assert out.count("✗ incorrect") + out.count("✓ correct") == 6
    assert "equals gold" in out or "gold is 7" in out


def test_solve_retrieves_from_a_saved_graph(trained_tiny_path, tmp_path, capsys):
    from selfimprove.knowledge import KnowledgeGraph
    from selfimprove.tasks.recipe import load_recipe, load_tasks

    graph_file = tmp_path / "kg.json"
    KnowledgeGraph.build(load_tasks(load_recipe("arith"), "train", 20, seed=0, steps=1)).save(graph_file)
    out_file = tmp_path / "tree.json"
    assert (
        _solve(
            trained_tiny_path, "--kg", str(graph_file), "--rounds", "1", "--n", "1", "--out", str(out_file)
        )
        == 0
    )
    out = capsys.readouterr().out
    tree = json.loads(out_file.read_text())
    assert "retrieved:" in out and tree["head"].startswith("<|thinking|>\nConcepts:")
    assert tree["retrieval"]["concepts"]


def test_solve_rejects_bad_settings(trained_tiny_path, capsys):
    assert _solve(trained_tiny_path, "--rounds", "0") == 2
    assert "preflexor.rounds must be >= 1, got 0" in capsys.readouterr().out
