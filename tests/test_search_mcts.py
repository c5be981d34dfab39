"""MCTS invariants on the trained tiny test model, and PUCT/pair logic on a toy tree with a known optimum."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import pytest

from selfimprove.policy.base import Completion
from selfimprove.search.best_of_n import BestOfN, BestOfNConfig
from selfimprove.search.mcts import MCTS, MCTSConfig, puct
from selfimprove.search.pairs import tree_pairs
from selfimprove.search.tree import Node, Tree
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks
from selfimprove.tasks.task import Task
from selfimprove.verify.registry import make_verifier


class RecordingPolicy:
    """The real HF policy, with every prompt it is sent kept for inspection."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.prompts: list[str] = []

    def generate(self, prompts, **kwargs):
        self.prompts.extend(prompts)
        return self.policy.generate(prompts, **kwargs)

    def logprobs(self, prompts, completions):
        self.prompts.extend(prompts)
        return self.policy.logprobs(prompts, completions)


@pytest.fixture(scope="module")
def policy(trained_tiny_path):
    from selfimprove.policy.hf import HFPolicy

    return HFPolicy.from_pretrained(trained_tiny_path)


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("arith")


@pytest.fixture(scope="module")
def tasks(recipe):
    return load_tasks(recipe, "train", 6, seed=3, steps=2)


SMALL = MCTSConfig(
    simulations=12,
    children=3,
    rollouts=2,
    max_step_tokens=40,
    max_rollout_tokens=96,
    leaves_per_tree=2,
    trees_per_batch=8,
    margin=0.3,
    pair_kinds=("step", "extended", "full"),
)


@pytest.fixture(scope="module")
def lockstep_run(policy, recipe, tasks):
    recorder = RecordingPolicy(policy)
    result = MCTS(SMALL).run(
        recorder, make_verifier("math"), tasks, lambda t: format_prompt(recipe, t), seed=7
    )
    return result, recorder.prompts


def _check_tree_invariants(tree: dict, simulations: int) -> None:
    nodes = {n["id"]: n for n in tree["nodes"]}
    root = nodes[0]
    assert root["N"] == simulations
    for node in nodes.values():
        assert node["N"] == node["evaluations"] + sum(nodes[c]["N"] for c in node["children"])
        assert 0.0 <= node["Q"] <= 1.0
        if node["children"]:
            assert math.isclose(sum(nodes[c]["prior"] for c in node["children"]), 1.0, rel_tol=1e-9)
        if node["terminal"] and node["N"]:
            assert node["outcome"] in (True, False)
            assert node["Q"] == float(node["outcome"])


def test_tree_invariants(lockstep_run, tasks):
    result, _ = lockstep_run
    assert len(result.trees) == len(tasks)
    for tree in result.trees:
        _check_tree_invariants(tree, SMALL.simulations)
    assert result.stats["search/tokens"] > 0
    assert result.stats["search/nodes"] == sum(len(t["nodes"]) for t in result.trees)


def _expected_step_pairs(tree: dict, margin: float) -> set[tuple[int, int, int]]:
    """(node, chosen, rejected) for every node whose children satisfy DESIGN §5, computed from the JSON."""
    nodes = {n["id"]: n for n in tree["nodes"]}

    def has_correct(node_id: int) -> bool:
        node = nodes[node_id]
        if (node["terminal"] and node["outcome"]) or any(r["correct"] for r in node["rollouts"]):
            return True
        return any(has_correct(c) for c in node["children"] if nodes[c]["N"])

    expected = set()
    for node in nodes.values():
        evaluated = [nodes[c] for c in node["children"] if nodes[c]["N"]]
        if len(evaluated) < 2:
            continue
        chosen = max(evaluated, key=lambda n: (n["Q"], -n["id"]))
        rejected = min(evaluated, key=lambda n: (n["Q"], n["id"]))
        distinct = chosen["text"].strip() != rejected["text"].strip()
        if chosen["Q"] - rejected["Q"] >= margin and has_correct(chosen["id"]) and distinct:
            expected.add((node["id"], chosen["id"], rejected["id"]))
    return expected


def test_pairs_share_prompt_and_respect_margin(lockstep_run, recipe, tasks):
    result, _ = lockstep_run
    by_id = {t.id: t for t in tasks}
    for pair in result.pairs:
        meta = pair.metadata
        task = by_id[meta["task_id"]]
        assert pair.prompt.startswith(format_prompt(recipe, task))
        assert pair.chosen != pair.rejected
        if meta["kind"] != "full":
            assert meta["q_chosen"] - meta["q_rejected"] >= SMALL.margin
            tree = next(t for t in result.trees if t["task_id"] == task.id)
            nodes = {n["id"]: n for n in tree["nodes"]}
            # chosen and rejected are siblings: children of the node whose prefix is the prompt
            assert (
                nodes[meta["chosen_id"]]["parent"] == nodes[meta["rejected_id"]]["parent"] == meta["node_id"]
            )
    # every qualifying sibling pair in every tree became a step pair, and nothing else did
    for tree in result.trees:
        made = {
            (p.metadata["node_id"], p.metadata["chosen_id"], p.metadata["rejected_id"])
            for p in result.pairs
            if p.metadata["kind"] == "step" and p.metadata["task_id"] == tree["task_id"]
        }
        assert made == _expected_step_pairs(tree, SMALL.margin)


def test_gold_solution_never_in_a_prompt(lockstep_run, tasks):
    _, prompts = lockstep_run
    assert prompts
    for task in tasks:
        assert task.solution
        assert not any(task.solution in prompt for prompt in prompts)


def test_one_tree_at_a_time_keeps_invariants_and_seed_reproduces(policy, recipe, tasks, lockstep_run):
    sequential = dataclasses.replace(SMALL, leaves_per_tree=1, trees_per_batch=1)
    verifier = make_verifier("math")
    prompt_fn = lambda t: format_prompt(recipe, t)  # noqa: E731
    first = MCTS(sequential).run(policy, verifier, tasks[:3], prompt_fn, seed=11)
    second = MCTS(sequential).run(policy, verifier, tasks[:3], prompt_fn, seed=11)
    for tree in first.trees:
        _check_tree_invariants(tree, SMALL.simulations)
    assert first.trees == second.trees
    assert [p.to_dict() for p in first.pairs] == [p.to_dict() for p in second.pairs]
    again = MCTS(SMALL).run(policy, verifier, tasks, prompt_fn, seed=7)
    assert again.trees == lockstep_run[0].trees


def test_best_of_n_same_format(policy, recipe, tasks):
    result = BestOfN(BestOfNConfig(n=4, max_new_tokens=96)).run(
        policy, make_verifier("math"), tasks, lambda t: format_prompt(recipe, t), seed=0
    )
    for tree in result.trees:
        _check_tree_invariants(tree, 4)
    for pair in result.pairs:
        assert pair.metadata["kind"] == "full" and pair.chosen_eos and pair.rejected_eos
    assert len(result.samples) >= len(tasks)


def test_token_budget_stops_taking_tasks(policy, recipe, tasks):
    config = dataclasses.replace(SMALL, trees_per_batch=2, simulations=4)
    result = MCTS(config).run(
        policy, make_verifier("math"), tasks, lambda t: format_prompt(recipe, t), seed=0, token_budget=1
    )
    assert len(result.trees) == 2  # the first wave spends the budget; no later wave starts


# ---------------------------------------------------------------------------------------------------------
# a toy tree with a known optimum: step "good" leads to the right answer, step "bad" never does


class ToyPolicy:
    """A deterministic two-action world: after `k` good steps the answer line is right; any bad step is fatal.

    Not a stand-in for a language model: it is the environment of a toy tree whose optimum is known,
    so PUCT, backup and pair extraction can be checked against exact values.
    """

    def generate(
        self, prompts: Sequence[str], *, n: int = 1, stop: Sequence[str] = (), **_
    ) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            lines = prompt.split("Answer:\n", 1)[1].splitlines() if "Answer:\n" in prompt else []
            depth = len(lines)
            bad_so_far = any(line == "bad" for line in lines)
            group = []
            for i in range(n):
                if stop:  # an expansion: alternate good / bad steps, or the answer at depth 2
                    if depth >= 2:
                        text = "#### 7" if not bad_so_far else "#### 0"
                        group.append(Completion(text, (1, 2), -1.0, "eos"))
                    else:
                        text = "good" if i % 2 == 0 else "bad"
                        group.append(Completion(text, (1,), -0.5 if text == "good" else -2.0, "stop", "\n"))
                else:  # a rollout to the end
                    steps = ["good"] * max(0, 2 - depth)
                    answer = "#### 0" if bad_so_far else "#### 7"
                    group.append(Completion("\n".join([*steps, answer]), (1,) * 3, -1.0, "eos"))
            out.append(group)
        return out

    def logprobs(self, prompts, completions):
        return [0.0] * len(prompts)


def test_toy_tree_prefers_the_good_step():
    task = Task(id="toy", question="q", answer="7", solution="good\ngood\n#### 7")
    config = MCTSConfig(
        simulations=10, children=2, rollouts=2, leaves_per_tree=1, trees_per_batch=1, margin=0.5
    )
    result = MCTS(config).run(ToyPolicy(), make_verifier("math"), [task], lambda t: "Answer:\n", seed=0)
    nodes = result.trees[0]["nodes"]
    root_children = [nodes[c] for c in nodes[0]["children"]]
    good = next(n for n in root_children if n["text"] == "good")
    bad = next(n for n in root_children if n["text"] == "bad")
    # every solution through "bad" fails; through "good" only a later "bad" step can fail
    assert bad["Q"] == 0.0 and good["Q"] >= 0.5
    # PUCT sends the remaining simulations down the good branch
    assert good["N"] > bad["N"]
    # priors: softmax of length-normalised log-probs (-0.5 vs -2.0)
    assert math.isclose(good["prior"], 1 / (1 + math.exp(-1.5)), rel_tol=1e-9)
    root_pairs = [p for p in result.pairs if p.metadata["node_id"] == 0]
    assert len(root_pairs) == 1
    assert root_pairs[0].chosen == "good\n" and root_pairs[0].rejected == "bad\n"
    assert not root_pairs[0].chosen_eos and not root_pairs[0].rejected_eos


def test_puct_formula():
    parent = Node(id=0, parent=None, text="", depth=0, visits=9)
    child = Node(id=1, parent=0, text="a", depth=1, prior=0.25, visits=2, value_sum=1.0)
    assert math.isclose(puct(child, parent, c_puct=2.0, first_play=0.0), 0.5 + 2.0 * 0.25 * 3 / 3)


def test_pairs_need_a_verified_correct_chosen_subtree():
    tree = Tree(Task(id="t", question="q", answer="1"), "P\n", "\n")
    a = tree.add_child(tree.root, text="a")
    b = tree.add_child(tree.root, text="b")
    for node, value in ((a, 1.0), (b, 0.0)):
        node.value = value
        node.evaluations = 1
        tree.backup(node, value)
    # Q(a) - Q(b) = 1 >= margin, but nothing under `a` was verified correct: no pair
    assert tree_pairs(tree, margin=0.3, kinds=("step",), max_full_pairs=2) == []
    from selfimprove.search.tree import Rollout

    a.rollouts.append(Rollout("#### 1", True, 3))
    pairs = tree_pairs(tree, margin=0.3, kinds=("step", "extended"), max_full_pairs=2)
    assert [p.metadata["kind"] for p in pairs] == ["step"]  # no incorrect continuation under b for "extended"
    b.rollouts.append(Rollout("#### 2", False, 3))
    pairs = tree_pairs(tree, margin=0.3, kinds=("step", "extended"), max_full_pairs=2)
    assert [(p.chosen, p.rejected) for p in pairs] == [("a\n", "b\n"), ("a\n#### 1", "b\n#### 2")]


class ArithmeticPolicy:
    """Steps with a true or a false calculator annotation; rollouts always reach the right answer.

    Without the step check both steps look equally good (every rollout succeeds); with it, the false step is
    a terminal worth exactly 0 and gets no rollout at all.
    """

    def generate(
        self, prompts: Sequence[str], *, n: int = 1, stop: Sequence[str] = (), **_
    ) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            depth = len(prompt.split("Answer:\n", 1)[1].splitlines())
            if stop and depth == 0:
                steps = ["So 2+3=<<2+3=5>>5.", "So 2+3=<<2+3=6>>6."]
                out.append([Completion(steps[i % 2], (1, 2), -1.0, "stop", "\n") for i in range(n)])
            else:  # the answer step, or a rollout to the end
                out.append([Completion("#### 5", (1,), -0.5, "eos") for _ in range(n)])
        return out

    def logprobs(self, prompts, completions):
        return [0.0] * len(prompts)


@pytest.mark.parametrize("verifier_name", ["math", "math-answer"])
def test_step_verifier_prunes_false_steps(verifier_name: str) -> None:
    task = Task(id="add", question="q", answer="5", solution="So 2+3=<<2+3=5>>5.\n#### 5")
    config = MCTSConfig(
        simulations=8, children=2, rollouts=2, leaves_per_tree=1, trees_per_batch=1, margin=0.5
    )
    result = MCTS(config).run(
        ArithmeticPolicy(), make_verifier(verifier_name), [task], lambda t: "Answer:\n", seed=0
    )
    nodes = result.trees[0]["nodes"]
    true_step, false_step = (next(n for n in nodes if n["text"] == f"So 2+3=<<2+3={v}>>{v}.") for v in (5, 6))
    if verifier_name == "math":
        assert false_step["pruned"] and false_step["terminal"] and false_step["rollouts"] == []
        assert false_step["Q"] == 0.0 and true_step["Q"] == 1.0
        assert result.stats["search/false_steps"] == 1
        assert [(p.chosen, p.rejected) for p in result.pairs if p.metadata["kind"] == "step"] == [
            ("So 2+3=<<2+3=5>>5.\n", "So 2+3=<<2+3=6>>6.\n")
        ]
    else:  # the answer-only check cannot tell the steps apart
        assert not false_step["pruned"] and false_step["Q"] == 1.0 and true_step["Q"] == 1.0
        assert result.stats["search/false_steps"] == 0
        assert [p for p in result.pairs if p.metadata["kind"] == "step"] == []
