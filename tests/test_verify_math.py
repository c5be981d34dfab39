"""Rules of the math verifier: extraction, exact and symbolic equivalence, hostile input, the Verifier."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from selfimprove.tasks.task import Task
from selfimprove.verify import math as vmath
from selfimprove.verify.base import Verdict
from selfimprove.verify.math import MathVerifier, clear_cache, extract_answer, is_equivalent

# --- extraction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `#### X` wins over everything else, and is cleaned
        ("He has 3+4=<<3+4=7>>7 apples.\n#### 7", "7"),
        ("So the answer is 3.\n#### 4", "4"),
        ("#### 1,234,567", "1234567"),
        ("#### $18.50", "18.50"),
        ("#### 18 dollars.", "18"),
        ("#### 50%", "50%"),
        # \boxed{X}, braces matched, the last box
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{5 \\text{ cm}}", "5"),
        ("\\boxed 7", "7"),
        # a final answer line: GSM8K example solutions end with `A: N`
        ("She makes 9 * 2 = $<<9*2=18>>18 every day.\nA: 18", "18"),
        ("Total 2125.\nA: 2,125", "2125"),
        ("Answer: 7 apples", "7"),
        # "the answer is X": up to the sentence's end, not a decimal point
        ("So the answer is 42. Then we rest.", "42"),
        ("The answer is 5.5.", "5.5"),
        ("The final answer is $1,000.", "1000"),
        ("The answer is 18 dollars per day.", "18"),
        # the last number
        ("He has 5 - 3 = 2 apples left", "2"),
        ("The temperature drops to -3", "-3"),
        ("It took 48/6 hours", "48/6"),
        ("She pays 16 - 3 - 4 = <<16-3-4=9>>9", "9"),
        ("The total was $1,234.50 in all.", "1234.50"),
    ],
)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "no numbers at all", "\\boxed{"])
def test_extract_answer_none(text: str) -> None:
    assert extract_answer(text) is None


def test_answer_line_only_counts_as_the_last_line() -> None:
    # "A: 5" in the middle is not the final answer; the last number is
    assert extract_answer("A: 5\nthen 2 more, 7 in all") == "7"


# --- equivalence rules: (pred, gold, expected) -----------------------------------------------------------

RULES = {
    "integers": [("18", "18", True), ("18", "18.0", True), ("007", "7", True), ("18", "19", False)],
    "decimals": [("0.5", "1/2", True), ("0.50", ".5", True), ("0.5", "0.51", False)],
    "fractions": [
        ("3/4", "\\frac{3}{4}", True),
        ("\\dfrac{6}{8}", "0.75", True),
        ("\\tfrac12", "0.5", True),
        ("2\\frac{1}{2}", "5/2", True),  # mixed number
        ("3/4", "4/3", False),
    ],
    "percent": [
        ("50%", "0.5", True),
        ("50\\%", "50", True),
        ("12.5 percent", "0.125", True),
        ("50%", "0.5%", False),
        ("50%", "5", False),
    ],
    "scientific": [
        ("1.5e3", "1500", True),
        ("1.5 \\times 10^{3}", "1500", True),
        ("1.5E-3", "0.0015", True),
        ("2.5 million", "2500000", True),
        ("1.5e3", "150", False),
    ],
    "thousands": [("1,234,567", "1234567", True), ("1 234 567", "1234567", True), ("1,234", "1.234", False)],
    "currency": [
        ("$1,234.50", "1234.5", True),
        ("\\$5", "5", True),
        ("5 dollars", "5", True),
        ("€5", "5", True),
        ("$5", "6", False),
    ],
    "units": [
        ("12 apples", "12", True),
        ("5 cm^2", "5", True),
        ("60 km/h", "60", True),
        ("5\\text{ cm}", "5", True),
        ("90^\\circ", "90", True),
        ("12 apples", "13", False),
    ],
    "assignment": [("x = 5", "5", True), ("y=-2", "-2", True), ("x = 5", "-5", False)],
    "negative": [("-3", "-3.0", True), ("−3", "-3", True), ("-3", "3", False)],
    "tolerance": [
        ("0.3333333333333", "1/3", True),  # within 1e-9 relative
        ("8.333333333333334", "25/3", True),  # a float's repr of 25/3
        ("2.0000000001", "2", True),
        ("0.333", "1/3", False),  # no loose "close enough"
        ("0.33333", "1/3", False),
        ("1000000001", "1000000000", False),  # exact integers get no tolerance
    ],
    "latex": [
        ("\\left( \\frac{1}{2} \\right)", "0.5", True),
        ("\\mathrm{5}", "5", True),
        ("\\text{5}", "5", True),
        ("3 \\cdot 4", "12", True),
        ("3\\times 4", "12", True),
        ("$\\boxed{7}$", "7", True),
        ("\\frac{1}{2}", "\\frac{1}{3}", False),
    ],
    "powers_factorials": [
        ("5!", "120", True),
        ("2^{10}", "1024", True),
        ("2**10", "1024", True),
        ("2^{10}", "1000", False),
    ],
    "roots": [
        ("\\sqrt{4}", "2", True),
        ("\\sqrt[3]{27}", "3", True),
        ("\\sqrt{2}", "1.41421356237", True),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("\\sqrt{2}", "1.414", False),
        ("\\sqrt{2}", "\\sqrt{3}", False),
    ],
    "pi": [
        ("\\pi", "3.14159265358979", True),
        ("2\\pi", "\\pi \\cdot 2", True),
        ("\\frac{\\pi}{2}", "\\pi/2", True),
        ("\\pi", "3.14", False),
    ],
    "symbolic": [
        ("2(x+1)", "2x+2", True),
        ("x^2-1", "(x-1)(x+1)", True),
        ("\\sin(x)^2 + \\cos(x)^2", "1", True),
        ("x^2", "2x", False),
        ("\\sqrt{x^2}", "x", False),  # differs for negative x
    ],
    "tuples": [
        ("(1, 2)", "(1,2)", True),
        ("[1, 2)", "[1,2)", True),
        ("(1,2)", "(2,1)", False),
        ("(1,2)", "[1,2]", False),
    ],
    "words": [("approximately 5", "5", True), ("a total of 5", "5", True), ("about 6", "5", False)],
    "text_answers": [("\\text{Monday}", "monday", True), ("Yes.", "yes", True), ("yes", "no", False)],
}


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [pytest.param(p, g, e, id=f"{rule}:{p}|{g}") for rule, cases in RULES.items() for p, g, e in cases],
)
def test_is_equivalent_rule(pred: str, gold: str, expected: bool) -> None:
    assert is_equivalent(pred, gold, timeout=30.0) is expected  # generous: a cold sympy worker on a busy box
    assert is_equivalent(gold, pred, timeout=30.0) is expected  # symmetric


def test_each_rule_has_true_and_false_cases() -> None:
    for rule, cases in RULES.items():
        assert {expected for _, _, expected in cases} == {True, False}, rule


@pytest.mark.parametrize("pred", ["", "   ", "apples", "\\frac{}{}", "()", "1 2"])
def test_unreadable_answers_are_not_equal(pred: str) -> None:
    assert is_equivalent(pred, "12") is False


def test_results_are_cached() -> None:
    clear_cache()
    assert is_equivalent("0.75", "\\frac{3}{4}")
    before = vmath._exact_compare.cache_info().hits
    assert is_equivalent("0.75", "\\frac{3}{4}")
    assert vmath._exact_compare.cache_info().hits == before + 1


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive"):
        is_equivalent("1", "1", timeout=timeout)


# --- hostile input ---------------------------------------------------------------------------------------

TIMEOUT = 1.0
MARGIN = 0.75  # scheduling slack on a shared 2-core machine


def _hostile(sentinel: Path) -> list[str]:
    return [
        f"__import__('pathlib').Path('{sentinel}').touch()",
        f"__import__('os').system('touch {sentinel}')",
        "9**9**9**9",
        "9^{9^{9^{9}}}",
        "10**10**10",
        "99999!",
        "((1000!)!)",
        "1e999999999",
        "(" * 10_000 + "1" + ")" * 10_000,
        "-" * 10_000 + "1",
        "1" * 100_000,
        "\\sqrt{" * 5_000 + "2" + "}" * 5_000,
        "\\frac{}{}",
        "\\frac{\\frac{}{",
        "}{)(][",
        "\\sqrt[1000000000]{2}",
        "\\sin(10^{9999})",
        "(x+1)^{10000} - 1",
        "x^{10^{100}}",
        "\\exp(\\exp(\\exp(\\exp(x))))",  # sympy's evalf spins on this: only the deadline stops it
    ]


def _timed(pred: str, gold: str) -> tuple[bool, float]:
    start = time.monotonic()
    result = is_equivalent(pred, gold, timeout=TIMEOUT)
    return result, time.monotonic() - start


def test_hostile_strings_in_main_thread(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    clear_cache()
    for text in _hostile(sentinel):
        for pred, gold in ((text, "1"), ("x", text)):
            result, elapsed = _timed(pred, gold)
            assert result is False, text[:40]
            assert elapsed < TIMEOUT + MARGIN, (text[:40], elapsed)
    assert not sentinel.exists()


def test_hostile_strings_from_worker_threads(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    clear_cache()
    texts = _hostile(sentinel)
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda text: _timed(text, "x + 1"), texts))
    for text, (result, elapsed) in zip(texts, outcomes, strict=True):
        assert result is False, text[:40]
        assert elapsed < TIMEOUT + MARGIN, (text[:40], elapsed)
    assert not sentinel.exists()


def test_timeout_from_a_plain_thread_then_recovers() -> None:
    clear_cache()
    box: list[tuple[bool, float]] = []
    thread = threading.Thread(target=lambda: box.append(_timed("\\exp(\\exp(\\exp(\\exp(y))))", "2")))
    thread.start()
    thread.join(timeout=TIMEOUT + 5)
    assert not thread.is_alive()
    result, elapsed = box[0]
    assert result is False and elapsed < TIMEOUT + MARGIN
    # the abandoned worker was replaced: symbolic comparisons still work
    assert is_equivalent("3(y+1)", "3y+3", timeout=30.0)


# --- the Verifier ----------------------------------------------------------------------------------------


def _task(answer: str) -> Task:
    return Task(id="t1", question="How many?", answer=answer)


def test_math_verifier_correct_and_incorrect() -> None:
    verifier = MathVerifier()
    right = verifier.check(_task("18"), "She sells 9 eggs.\n9 * 2 = <<9*2=18>>18\n#### 18")
    assert right == Verdict(correct=True, score=1.0, predicted="18", detail="'18' equals gold '18'")
    wrong = verifier.check(_task("18"), "She sells 13 eggs.\nA: 26")
    assert (wrong.correct, wrong.score, wrong.predicted) == (False, 0.0, "26")
    assert "differs from" in wrong.detail


def test_math_verifier_without_answer_and_hostile() -> None:
    verifier = MathVerifier(timeout=TIMEOUT)
    none = verifier.check(_task("3"), "I do not know.")
    assert none == Verdict(correct=False, score=0.0, predicted=None, detail="no final answer found")
    start = time.monotonic()
    hostile = verifier.check(_task("3"), "#### __import__('os').system('echo pwned')")
    assert hostile.correct is False and hostile.score == 0.0
    assert time.monotonic() - start < TIMEOUT + MARGIN


def test_math_verifier_rejects_bad_timeout() -> None:
    with pytest.raises(ValueError, match="got 0"):
        MathVerifier(timeout=0)
