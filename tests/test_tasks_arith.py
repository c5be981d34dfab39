"""The built-in word-problem generator: determinism, disjoint splits, exact annotations, step counts."""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

import pytest

from selfimprove.tasks.arith import (
    GENERATOR_VERSION,
    MAX_STEPS,
    check_solution,
    evaluate_expression,
    generate_tasks,
    solution_error,
    split_of,
)

# An independent reading of one solution line, so the test does not trust the module's own checker:
# "<clause>, so A op B=<<A op B=C>>C <unit>."
_LINE = re.compile(r"^[^<>=]+, so (\d+)([-+*/])(\d+)=<<(\d+)([-+*/])(\d+)=(\d+)>>(\d+) [a-z ]+\.$")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def _recompute(solution: str) -> list[int]:
    """The results of each line, recomputed with Fractions; asserts the line shape on the way."""
    *lines, final = solution.split("\n")
    results: list[int] = []
    for line in lines:
        m = _LINE.match(line)
        assert m is not None, line
        a, op, b, a2, op2, b2, c, shown = m.groups()
        assert (a, op, b) == (a2, op2, b2) and c == shown, line
        value = _OPS[op](Fraction(a), Fraction(b))
        assert value == Fraction(c) and value.denominator == 1, line
        results.append(int(c))
    assert final == f"#### {results[-1]}"
    return results


def test_same_seed_same_tasks_and_prefix_property() -> None:
    first = generate_tasks("train", 300, seed=5)
    assert generate_tasks("train", 300, seed=5) == first
    assert generate_tasks("train", 120, seed=5) == first[:120]
    other = generate_tasks("train", 300, seed=6)
    assert len({t.question for t in first} & {t.question for t in other}) < 5


def test_first_task_is_pinned() -> None:
    # Guards cross-process determinism (string seeds hash with SHA-512, not Python's salted hash).
    # A template change that alters this text must bump GENERATOR_VERSION (caches key on it).
    assert GENERATOR_VERSION == 1
    task = generate_tasks("test", 1, seed=0, steps=2)[0]
    assert task.id == "arith-test-s2-000000"
    assert task.question == (
        "Chloe has 88 beads. She picks up 29 more beads. "
        "She splits them into 9 equal piles and keeps one pile. How many beads does Chloe end up with?"
    )
    assert task.solution == (
        "She picks up 29 more, so 88+29=<<88+29=117>>117 beads.\n"
        "She keeps 1 of 9 piles, so 117/9=<<117/9=13>>13 beads.\n"
        "#### 13"
    )
    assert task.answer == "13"
    assert task.metadata == {"steps": 2, "split": "test", "template": "has_items"}


def test_splits_are_disjoint_across_seeds() -> None:
    train = generate_tasks("train", 5000, seed=0)
    test = generate_tasks("test", 5000, seed=0)
    val = generate_tasks("val", 1000, seed=0)
    test_other_seed = generate_tasks("test", 1000, seed=1, steps=2)
    train_q = {t.question for t in train}
    test_q = {t.question for t in test} | {t.question for t in test_other_seed}
    val_q = {t.question for t in val}
    assert len(train_q) == 5000 and len({t.question for t in test}) == 5000  # no duplicates within a call
    assert not train_q & test_q
    assert not train_q & val_q
    assert not val_q & test_q
    assert all(split_of(q) == "train" for q in train_q)
    assert all(t.metadata["split"] == "test" and t.id.startswith("arith-test-s") for t in test)


@pytest.mark.parametrize("k", range(1, MAX_STEPS + 1))
def test_every_annotation_recomputes_and_steps_equal_lines(k: int) -> None:
    tasks = generate_tasks("test", 150, seed=11, steps=k)
    assert len(tasks) == 150
    for i, task in enumerate(tasks):
        assert check_solution(task.solution)
        results = _recompute(task.solution)
        assert len(results) == k == task.steps == task.solution.count("<<")
        assert task.answer == str(results[-1])
        assert task.id == f"arith-test-s{k}-{i:06d}"
        assert all(1 <= r <= 9_999 for r in results)
        # Chained: from line 2 on, the first operand is the previous line's result.
        firsts = [int(m) for m in re.findall(r"<<(\d+)", task.solution)]
        assert firsts[1:] == results[:-1]
        # The other operand is stated in the question (as 5, $5, or p% for a division by 100/p), <= 100.
        stated = set(re.findall(r"\$?\d+%?", task.question))
        for m in re.finditer(r"<<(\d+)([-+*/])(\d+)=", task.solution):
            b = int(m.group(3))
            percent = f"{100 // b}%" if m.group(2) == "/" and b in (2, 4, 5, 10) else None
            assert b <= 100 and ({str(b), f"${b}", percent} & stated), (task.question, m.group(0))
        assert int(firsts[0]) <= 100 and ({str(firsts[0]), f"${firsts[0]}"} & stated)


def test_variety_of_templates_operations_and_wordings() -> None:
    tasks = generate_tasks("train", 3000, seed=2)
    templates = Counter(t.metadata["template"] for t in tasks)
    assert set(templates) == {"has_items", "has_money", "boxes", "wage", "savings", "sale", "two_days"}
    ops = Counter(op for t in tasks for op in re.findall(r"<<\d+([-+*/])", t.solution))
    assert set(ops) == {"+", "-", "*", "/"} and min(ops.values()) > 500
    assert Counter(t.steps for t in tasks).keys() == {1, 2, 3, 4}
    assert sum("%" in t.question for t in tasks) > 50  # percentages
    assert sum("$" in t.question for t in tasks) > 1000  # money
    assert sum(" an hour" in t.question for t in tasks) > 50  # rates
    assert len({t.question.split()[0] for t in tasks}) >= 40  # names
    for ending in ("have now?", "have in the end?", "end up with?"):  # question wordings
        assert sum(t.question.endswith(ending) for t in tasks) > 500


def test_check_solution_rejects_wrong_solutions() -> None:
    good = "He has 3 boxes of 4, so 3*4=<<3*4=12>>12 apples.\nHe eats 5, so 12-5=<<12-5=7>>7 apples.\n#### 7"
    assert check_solution(good) and solution_error(good) is None
    assert "is 12, not 13" in solution_error(good.replace("3*4=12", "3*4=13"))
    assert "differs from the last result" in solution_error(good.replace("#### 7", "#### 8"))
    assert "not '#### N'" in solution_error(good.rsplit("\n", 1)[0])
    assert solution_error("The answer is 7.\n#### 7") == "no <<expr=value>> annotation"
    assert not check_solution(good.replace("12-5=7", "12-5=7.5"))
    assert check_solution("Half: 7/2=<<7/2=3.5>>3.5\n#### 3.5")  # exact fractions, GSM8K style decimals
    assert check_solution("Cost 1,000+20=<<1,000+20=1,020>>1,020\n#### 1,020")


def test_evaluate_expression_is_exact_and_safe() -> None:
    assert evaluate_expression("2+3*4") == 14
    assert evaluate_expression("(2+3)*4") == 20
    assert evaluate_expression("7/2") == Fraction(7, 2)
    assert evaluate_expression("-3+5") == 2
    assert evaluate_expression(".5*4") == 2
    assert evaluate_expression("1/3+1/6") == Fraction(1, 2)
    for hostile in ("__import__('os')", "2**3", "9" * 40, "1/0", "(1+2", "1+", "", "2 3", "x=5", "1" * 300):
        with pytest.raises(ValueError):
            evaluate_expression(hostile)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "dev"}, "split='dev'; allowed: train, val, test"),
        ({"steps": 9}, "steps=9; allowed: 1..8"),
        ({"steps": 0}, "steps=0; allowed: 1..8"),
        ({"min_steps": 3, "max_steps": 2}, "min_steps=3 > max_steps=2"),
        ({"n": -1}, "n=-1"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs: dict, message: str) -> None:
    args = {"split": "train", "n": 3, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_tasks(args.pop("split"), args.pop("n"), **args)
