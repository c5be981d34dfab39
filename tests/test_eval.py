"""Eval metrics against hand-computed values, and evaluate() on a scripted policy and the trained preset."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest

from selfimprove.eval.evaluate import EvalReport, evaluate
from selfimprove.eval.metrics import majority_vote, pass_at_k
from selfimprove.policy.base import Completion
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks

# ---------------------------------------------------------------------------------------------------------
# pass@k and maj@k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 1, 0.3),
        (10, 0, 3, 0.0),
        (10, 10, 1, 1.0),
        (4, 1, 4, 1.0),  # n - c < k: every draw holds the correct one
        (8, 2, 4, 1 - 15 / 70),  # C(6,4)/C(8,4)
        (2000, 1, 1000, 0.5),  # large n: the product form neither overflows nor loses precision
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_equals_the_binomial_formula():
    for n in range(1, 25):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="need"):
        pass_at_k(n, c, k)


def test_majority_vote_clusters_equivalent_answers_and_breaks_ties_by_first_seen():
    assert majority_vote(["7", "3", "7"]) == "7"
    # "1/2" and "0.5" vote together (2 votes) and beat "3" (1 vote) although "3" came first
    assert majority_vote(["3", "0.5", "1/2"]) == "0.5"
    assert majority_vote(["0.5", "3", "1/2", "3", None]) == "0.5"  # 2-2 tie: the first-seen cluster
    assert majority_vote(["3", "1/2", "0.5", "3"]) == "3"
    assert majority_vote(["1,000", "1000", "999"]) == "1,000"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None
    assert majority_vote(["a", "A", "b"], equivalent=lambda x, y: x.lower() == y.lower()) == "a"


# ---------------------------------------------------------------------------------------------------------
# evaluate() on a scripted policy: every number is known in advance


class ScriptedPolicy:
    """Answers task i greedily right when i is even; of its k samples the first i % (k + 1) are right.

    Right answers are the gold solution; wrong ones end in `#### 0` (no task's answer is 0), except that
    wrong samples of task 1 give no answer at all, so its vote abstains.
    """

    def __init__(self, tasks) -> None:
        self.by_prompt = {format_prompt(load_recipe("arith"), t): (i, t) for i, t in enumerate(tasks)}

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n=1,
        max_new_tokens=256,
        temperature=1.0,
        top_p=1.0,
        stop=(),
        seed=None,
    ):
        out = []
        for prompt in prompts:
            i, task = self.by_prompt[prompt]
            right = [i % 2 == 0] if temperature == 0 else [j < i % (n + 1) for j in range(n)]
            wrong = "I do not know." if i == 1 else "So 1-1=<<1-1=0>>0.\n#### 0"
            texts = [task.solution if r else wrong for r in right]
            out.append([Completion(t, tuple(range(len(t))), 0.0, "eos") for t in texts])
        return out

    def logprobs(self, prompts, completions):
        raise NotImplementedError("evaluate never scores")


def test_evaluate_counts_on_a_scripted_policy():
    recipe = load_recipe("arith")
    tasks = load_tasks(recipe, "test", 6, steps=2, seed=5)
    k = 3
    report = evaluate(ScriptedPolicy(tasks), recipe, n=6, k=k, steps=[2], seed=5)
    # task i: greedy right iff i even; c_i = i % 4 of 3 samples right -> c = 0, 1, 2, 3, 0, 1
    correct = [0, 1, 2, 3, 0, 1]
    assert [r.num_correct for r in report.records] == correct
    assert [r.greedy_correct for r in report.records] == [True, False, True, False, True, False]
    assert report.overall.greedy == pytest.approx(3 / 6)
    assert report.overall.pass_at_k == pytest.approx(4 / 6)  # c > 0 on tasks 1, 2, 3, 5
    assert report.overall.pass_at_1 == pytest.approx(sum(correct) / 18)
    # majority right when c >= 2 of 3; task 1 (c=1, two abstentions) is won by its single right answer
    assert [r.majority_correct for r in report.records] == [False, True, True, True, False, False]
    assert report.overall.maj_at_k == pytest.approx(3 / 6)
    assert report.by_steps[0].steps == 2 and report.by_steps[0].n == 6
    assert report.tokens == sum(r.tokens for r in report.records)


def test_evaluate_on_the_val_split_uses_val_tasks():
    recipe = load_recipe("arith")
    val = load_tasks(recipe, "val", 6, steps=2, seed=5)
    report = evaluate(ScriptedPolicy(val), recipe, n=6, k=0, steps=[2], seed=5, split="val")
    assert [r.task_id for r in report.records] == [t.id for t in val]
    assert all(t.id.startswith("arith-val-") for t in val)
    assert [r.greedy_correct for r in report.records] == [True, False, True, False, True, False]


def test_evaluate_rejects_bad_settings():
    recipe = load_recipe("arith")
    policy = ScriptedPolicy([])
    with pytest.raises(ValueError, match="n must be"):
        evaluate(policy, recipe, n=0)
    with pytest.raises(ValueError, match="k must be"):
        evaluate(policy, recipe, n=1, k=-1)
    with pytest.raises(ValueError, match="temperature"):
        evaluate(policy, recipe, n=1, k=2, temperature=0.0)


def test_report_from_dict_rejects_malformed_input():
    with pytest.raises(ValueError, match="not an eval report"):
        EvalReport.from_dict({"recipe": "arith"})


# ---------------------------------------------------------------------------------------------------------
# evaluate() on the trained test preset


@pytest.fixture(scope="module")
def trained_policy(trained_tiny_path):
    from selfimprove.policy.hf import HFPolicy

    return HFPolicy.from_pretrained(trained_tiny_path, device="cpu")


def test_evaluate_trained_preset_is_consistent_and_round_trips(trained_policy):
    report = evaluate(trained_policy, "arith", n=4, k=3, steps=[1, 2], max_new_tokens=96, seed=1)
    assert report.overall.n == sum(g.n for g in report.by_steps) == len(report.records) == 8
    assert [g.steps for g in report.by_steps] == [1, 2]
    assert [r.steps for r in report.records] == [1] * 4 + [2] * 4
    for group in (*report.by_steps, report.overall):
        assert 0 <= group.pass_at_1 <= group.pass_at_k <= 1
        assert 0 <= group.greedy <= 1 and 0 <= group.maj_at_k <= group.pass_at_k
    assert all(r.num_samples == 3 and 0 <= r.num_correct <= 3 for r in report.records)
    assert report.overall.pass_at_k == pytest.approx(sum(r.num_correct > 0 for r in report.records) / 8)
    assert report.tokens == sum(g.tokens for g in report.by_steps) > 0 and report.seconds > 0
    again = EvalReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    # the same seed gives the same samples, hence the same records
    assert (
        evaluate(trained_policy, "arith", n=4, k=3, steps=[1, 2], max_new_tokens=96, seed=1).records
        == report.records
    )


def test_maj_at_1_is_sample_accuracy_and_k0_skips_sampling(trained_policy):
    one = evaluate(trained_policy, "arith", n=4, k=1, steps=[1], max_new_tokens=96)
    assert one.overall.maj_at_k == one.overall.pass_at_1 == one.overall.pass_at_k
    greedy_only = evaluate(trained_policy, "arith", n=4, k=0, steps=[1], max_new_tokens=96)
    assert greedy_only.overall.maj_at_k is None and greedy_only.overall.pass_at_k is None
    assert all(r.num_samples == 0 and r.majority_correct is None for r in greedy_only.records)
    assert greedy_only.overall.greedy == one.overall.greedy  # greedy is independent of the samples


def test_eval_cli_prints_and_writes_json(trained_tiny_path, tmp_path, capsys):
    from selfimprove.cli import main

    out = tmp_path / "eval.json"
    args = ["--task", "arith", "--n", "3", "--k", "2", "--steps", "1", "--max-new-tokens", "64"]
    code = main(["eval", "--model", str(trained_tiny_path), *args, "--out", str(out)])
    assert code == 0
    report = EvalReport.from_dict(json.loads(out.read_text()))
    assert report.overall.n == 3 and report.k == 2
    printed = capsys.readouterr().out
    assert "maj@2" in printed and "pass@2" in printed and "tokens generated" in printed
