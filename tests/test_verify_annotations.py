"""The process check of calculator annotations, and the strict math verifier built on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.tasks.task import Task
from selfimprove.verify.annotations import annotation_errors, arithmetic_errors
from selfimprove.verify.base import StepVerifier
from selfimprove.verify.math import MathVerifier
from selfimprove.verify.registry import make_verifier

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


@pytest.mark.parametrize(
    "text",
    [
        "So 8*23=<<8*23=184>>184 apples.",
        "<<20/3=6.67>>6.67 each",  # a rounded decimal
        "<<1,000+5=1,005>>1,005",  # thousands separators
        "<<3-5=-2>>-2",
        "<<0.5*3=1.5>>1.5",
        "<<3/4=3/4>>3/4 of them",
        "<<x*2=4>>4",  # notation, not arithmetic: left to the answer check
        "no annotations at all\n#### 5",
    ],
)
def test_true_annotations_pass(text: str) -> None:
    assert annotation_errors(text) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("So 8*23=<<8*23=164>>164 apples.", "8*23 is 184, not 164"),
        ("<<7/2=3>>3", "7/2 is 3.5, not 3"),
        ("<<2*6=12>>13", "the annotation says 12 but the text says 13"),
        ("<<2+2=four>>4", "result 'four' is not a number"),
    ],
)
def test_false_annotations_are_named(text: str, reason: str) -> None:
    errors = annotation_errors(text)
    assert [e.reason for e in errors] == [reason]


def test_every_error_in_order() -> None:
    text = "<<1+1=3>>3 then <<2+2=4>>4 then <<3*3=10>>10"
    assert [e.annotation for e in annotation_errors(text)] == ["<<1+1=3>>3", "<<3*3=10>>10"]


def test_hostile_annotations_do_not_raise() -> None:
    for text in ("<<9**9**9**9=1>>1", "<<" + "(" * 5000 + "1=1>>1", "<<__import__('os')=0>>0", "<<=>>"):
        assert isinstance(annotation_errors(text), list)


def test_strict_verifier_rejects_right_answer_through_false_step() -> None:
    task = Task(id="t", question="q", answer="184")
    lucky = "He has 8*23=<<8*23=164>>164 apples.\nHe finds 20, so 164+20=<<164+20=184>>184.\n#### 184"
    strict, lenient = MathVerifier(), make_verifier("math-answer")
    verdict = strict.check(task, lucky)
    assert (verdict.correct, verdict.score, verdict.predicted) == (False, 0.0, "184")
    assert "8*23 is 184, not 164" in verdict.detail
    assert lenient.check(task, lucky).correct
    assert strict.check(task, "So 8*23=<<8*23=184>>184.\n#### 184").correct


def test_check_prefix_flags_only_false_steps() -> None:
    verifier = make_verifier("math")
    assert isinstance(verifier, StepVerifier)
    task = Task(id="t", question="q", answer="1")
    assert verifier.check_prefix(task, "He buys 8, so 8+93=<<8+93=101>>101 cherries.") is None
    failed = verifier.check_prefix(task, "He buys 8, so 8+93=<<8+93=111>>111 cherries.")
    assert failed is not None and not failed.correct and "8+93 is 101" in failed.detail
    assert make_verifier("math-answer").check_prefix(task, "<<1+1=3>>3") is None


@pytest.mark.skipif(not GSM8K.exists(), reason=f"GSM8K data not found at {GSM8K}")
def test_gsm8k_gold_solutions_pass_the_check() -> None:
    """All 7,473 reference solutions of GSM8K train pass (and all 1,319 of test, checked by hand once)."""
    failing = 0
    for line in (GSM8K / "train.jsonl").read_text().splitlines():
        failing += bool(annotation_errors(json.loads(line)["answer"]))
    assert failing == 0


@pytest.mark.parametrize(
    "text",
    [
        "so 71+26: 71+20=91, 91+6=97, 71+26=<<71+26=97>>97 dollars.",
        "864/9: 9*90=810, 864-810=54, 54/9=6, 90+6=96, 864/9=<<864/9=96>>96",
        "The sun sets at 6:00+48=6:48 PM",  # a clock time
        "She pays 10-3-2=5 dollars",  # a chain: not a two-operand equation
        "1.5+2=3 and 3/4+1=2 and 2*50=100% and $5+5=$10",  # decimal, fraction, percent, money
        "so 5+5=10.",  # a full stop is not a decimal point
        "x=2+3=9",  # part of a longer expression: left alone
    ],
)
def test_true_or_unchecked_plain_equations_pass(text: str) -> None:
    assert arithmetic_errors(text) == []


def test_false_plain_equations_are_named_in_order_with_the_annotations() -> None:
    text = "so 71+26: 71+20=91, 91+6=98, 71+26=<<71+26=98>>98 dollars, then 7/0=1 and 9/2=4."
    assert [(e.annotation, e.reason) for e in arithmetic_errors(text)] == [
        ("91+6=98", "91+6 is 97, not 98"),
        ("<<71+26=98>>98", "71+26 is 97, not 98"),
        ("7/0=1", "7/0 divides by zero"),
        ("9/2=4", "9/2 is 4.5, not 4"),
    ]
    assert [e.annotation for e in annotation_errors(text)] == ["<<71+26=98>>98"]
    assert arithmetic_errors("9" * 5000 + "+1=2") == []  # too long to be arithmetic work: not parsed


def test_strict_verifier_rejects_a_right_annotation_after_false_work() -> None:
    task = Task(id="t", question="q", answer="97")
    copied = "so 71+26: 71+20=91, 91+6=96, 71+26=<<71+26=97>>97 dollars.\n#### 97"
    verdict = MathVerifier().check(task, copied)
    assert (verdict.correct, verdict.predicted) == (False, "97") and "91+6 is 97, not 96" in verdict.detail
    failed = MathVerifier().check_prefix(task, copied.split("\n")[0])
    assert failed is not None and "91+6 is 97, not 96" in failed.detail
    assert MathVerifier().check(task, copied.replace("=96", "=97")).correct


@pytest.mark.skipif(not GSM8K.exists(), reason=f"GSM8K data not found at {GSM8K}")
def test_gsm8k_references_with_false_plain_equations() -> None:
    """The plain-equation check flags exactly two GSM8K references, and both write a false equation."""
    flagged = {}
    for split in ("train", "test"):
        for number, line in enumerate((GSM8K / f"{split}.jsonl").read_text().splitlines(), 1):
            if errors := arithmetic_errors(json.loads(line)["answer"]):
                flagged[split, number] = [e.reason for e in errors]
    assert flagged == {("train", 503): ["3/1 is 3, not 1"], ("train", 7445): ["14*20 is 280, not 140"]}
    # the plain check flags none of the labelled model solutions beyond what the annotation check flags
    for line in (GSM8K / "example_model_solutions.jsonl").read_text().splitlines():
        for solution in (v["solution"] for v in json.loads(line).values() if isinstance(v, dict)):
            assert arithmetic_errors(solution) == annotation_errors(solution)
