"""Code tasks through the unchanged eval and searches: pass@k from sandbox verdicts against hand-computed
values, best-of-n pairs, an MCTS toy tree whose optimum is known, and a real run of the small model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from selfimprove.eval.evaluate import evaluate
from selfimprove.eval.metrics import pass_at_k
from selfimprove.policy.base import Completion
from selfimprove.search.best_of_n import BestOfN, BestOfNConfig
from selfimprove.search.mcts import MCTS, MCTSConfig
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks
from selfimprove.tasks.task import Task
from selfimprove.verify.code import CodeVerifier
from selfimprove.verify.registry import make_verifier

WRONG = "    return None"


def _done(text: str) -> Completion:
    return Completion(text, tuple(range(max(1, len(text) // 4))), -1.0, "eos")


class ScriptedCoder:
    """Task i's greedy answer is its gold body when i is even; of its k samples the first i % (k + 1) are.

    Wrong answers return None, which no codegen test expects.
    """

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.by_prompt = {format_prompt(load_recipe("codegen"), t): (i, t) for i, t in enumerate(tasks)}

    def generate(self, prompts, *, n=1, max_new_tokens=256, temperature=1.0, top_p=1.0, stop=(), seed=None):
        out = []
        for prompt in prompts:
            i, task = self.by_prompt[prompt]
            right = [i % 2 == 0] if temperature == 0 else [j < i % (n + 1) for j in range(n)]
            out.append([_done(task.solution if r else WRONG) for r in right])
        return out

    def logprobs(self, prompts, completions):
        raise NotImplementedError("evaluate and best-of-n never score")


def test_pass_at_k_of_code_matches_hand_values() -> None:
    # the estimator on code-style counts: 1 - C(n-c, k) / C(n, k)
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)
    assert pass_at_k(20, 1, 10) == pytest.approx(0.5)
    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 3, 2) == 1.0


def test_evaluate_on_codegen_reports_pass_at_1_and_pass_at_k_from_the_sandbox() -> None:
    recipe = load_recipe("codegen")
    tasks = load_tasks(recipe, "test", 4, steps=2, seed=5)
    k = 3
    report = evaluate(
        ScriptedCoder(tasks), recipe, n=4, k=k, steps=[2], seed=5, verifier=CodeVerifier(2.0, 256)
    )
    correct = [0, 1, 2, 3]  # i % (k + 1) of k samples
    assert [r.num_correct for r in report.records] == correct
    assert [r.greedy_correct for r in report.records] == [True, False, True, False]
    assert report.overall.pass_at_k == pytest.approx(sum(pass_at_k(k, c, k) for c in correct) / 4)  # 3/4
    assert report.overall.pass_at_k == pytest.approx(3 / 4)
    assert report.overall.pass_at_1 == pytest.approx(6 / 12)
    assert report.overall.greedy == pytest.approx(2 / 4)


def test_best_of_n_pairs_verified_code() -> None:
    tasks = load_tasks(load_recipe("codegen"), "train", 3, steps=3, seed=1)
    policy = ScriptedCoder(tasks)
    result = BestOfN(BestOfNConfig(n=3, max_pairs_per_task=1)).run(
        policy, CodeVerifier(2.0, 256), tasks, lambda t: format_prompt(load_recipe("codegen"), t), seed=0
    )
    # task i has i % 4 right samples of 3: pairs need a right and a wrong one, so tasks 1 and 2 give one
    assert [s.correct for s in result.samples if s.task_id == tasks[0].id] == [False]  # duplicates merge
    assert sorted(p.metadata["task_id"] for p in result.pairs) == [tasks[1].id, tasks[2].id]
    for pair in result.pairs:
        gold = next(t for t in tasks if t.id == pair.metadata["task_id"]).solution
        assert pair.chosen.startswith(gold) and pair.rejected.startswith(WRONG)


class ToyCoder:
    """The environment of a toy tree with a known optimum: the first line sorts (right) or reverses (wrong)
    the list, the second line returns its first element; only the sorted branch computes the minimum."""

    def __init__(self, root: str, lines: tuple[str, str, str]) -> None:
        self.root = root
        self.good, self.bad, self.last = lines

    def generate(self, prompts, *, n=1, stop=(), **_):
        out = []
        for prompt in prompts:
            at_root = prompt == self.root  # nothing written after the task's prompt yet
            group = []
            for i in range(n):
                if stop and at_root:  # an expansion at the root: alternate the two first lines
                    text = self.good if i % 2 == 0 else self.bad
                    group.append(Completion(text, (1,), -0.5 if i % 2 == 0 else -2.0, "stop", "\n"))
                else:  # the last line, as a step or as a rollout
                    group.append(_done(self.last))
            out.append(group)
        return out

    def logprobs(self, prompts, completions):
        return [0.0] * len(prompts)


def _toy_tree(prompt: str, lines: tuple[str, str, str], mode: str) -> None:
    task = Task(
        id="toy",
        question=prompt,
        answer="",
        kind="code",
        metadata={
            "prompt": prompt,
            "completion": mode,
            "tests": "assert f([3, 1, 2]) == 1\nassert f([]) == -1\n",
        },
    )
    config = MCTSConfig(
        simulations=6, children=2, rollouts=1, leaves_per_tree=1, trees_per_batch=1, margin=0.5
    )
    result = MCTS(config).run(
        ToyCoder(prompt, lines), CodeVerifier(2.0, 256), [task], lambda t: t.question, seed=0
    )
    nodes = result.trees[0]["nodes"]
    first = {nodes[c]["text"]: nodes[c] for c in nodes[0]["children"]}
    good, bad = first[lines[0]], first[lines[1]]
    assert good["Q"] == 1.0 and bad["Q"] == 0.0 and good["N"] > bad["N"]
    root_pairs = [p for p in result.pairs if p.metadata["node_id"] == 0]
    assert [(p.chosen, p.rejected) for p in root_pairs] == [(lines[0] + "\n", lines[1] + "\n")]


def test_mcts_toy_tree_on_code_prefers_the_passing_line() -> None:
    # Whole-program completions (MBPP style): every step starts in column 0.
    lines = ("def f(xs): xs = sorted(xs); return g(xs)", "def f(xs): xs = xs[::-1]; return g(xs)",
             "def g(xs): return xs[0] if xs else -1")  # fmt: skip
    _toy_tree("# Return the smallest number, or -1.\n", lines, "program")


def test_mcts_keeps_the_indentation_of_body_lines() -> None:
    lines = ("    xs = sorted(xs)", "    xs = xs[::-1]", "    return xs[0] if xs else -1")
    _toy_tree('def f(xs):\n    """Return the smallest number, or -1."""\n', lines, "body")


@pytest.fixture(scope="module")
def small_model(trained_tiny_path):
    from selfimprove.policy.hf import HFPolicy

    return HFPolicy.from_pretrained(trained_tiny_path)


def test_the_small_model_runs_through_eval_and_best_of_n_on_code(small_model) -> None:
    # The math-trained model writes no working code: the point is that the whole path runs.
    report = evaluate(small_model, "humaneval", n=2, k=2, max_new_tokens=16, seed=0)
    assert report.overall.n == 2 and [r.num_samples for r in report.records] == [2, 2]
    assert 0.0 <= report.overall.pass_at_1 <= report.overall.pass_at_k <= 1.0
    recipe = load_recipe("codegen")
    tasks = load_tasks(recipe, "train", 2, steps=2, seed=0)
    result = BestOfN(BestOfNConfig(n=2, max_new_tokens=24)).run(
        small_model, make_verifier("code"), tasks, lambda t: format_prompt(recipe, t), seed=0
    )
    assert len(result.trees) == 2 and 1 <= len(result.samples) <= 4
    assert all(s.prompt == tasks[0].question or s.prompt == tasks[1].question for s in result.samples)
