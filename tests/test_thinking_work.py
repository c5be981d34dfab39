"""Place-value work (knowledge/work.py) and the Work line of the thinking warm-start data."""

from __future__ import annotations

import random
import re

import pytest
from kgdata import T2, T4

from selfimprove.knowledge import KnowledgeGraph, plant_slip, thinking_examples, thinking_solution
from selfimprove.knowledge.thinking_data import refined_thinking, thinking_lines
from selfimprove.knowledge.work import annotation_work, inline_work, place_parts, work_line
from selfimprove.tasks.arith import generate_tasks
from selfimprove.tasks.recipe import format_prompt, load_recipe
from selfimprove.tasks.task import Task
from selfimprove.tasks.thinking import parse_thinking
from selfimprove.verify.annotations import annotation_errors, arithmetic_errors
from selfimprove.verify.math import MathVerifier

_SUB = re.compile(r"(\d+)([-+*/])(\d+)=(-?\d+)")


def _subs(work: str) -> list[tuple[int, str, int, int]]:
    """The sub-operations of one operation's work ("70-19: 70-10=60, 60-9=51" -> two of them)."""
    body = work.split(": ", 1)[-1]
    out = []
    for piece in body.split(", "):
        m = _SUB.fullmatch(piece)
        assert m is not None, piece
        out.append((int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))))
    return out


def _true(x: int, op: str, y: int, r: int) -> bool:
    return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else None}[op] == r


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return generate_tasks("train", 200, seed=5, min_steps=1, max_steps=4)


@pytest.fixture(scope="module")
def graph(tasks: list[Task]) -> KnowledgeGraph:
    return KnowledgeGraph.build(tasks)


@pytest.mark.parametrize(
    ("a", "op", "b", "work"),
    [
        (29, "+", 12, "29+10=39, 39+2=41"),
        (155, "+", 47, "155+40=195, 195+7=202"),
        (5, "+", 3, "5+3=8"),
        (150, "+", 30, "150+30=180"),
        (100, "+", 200, "100+200=300"),
        (12, "+", 105, "12+100=112, 112+5=117"),  # the zero tens part is skipped
        (40, "-", 21, "40-20=20, 20-1=19"),
        (202, "-", 8, "202-8=194"),
        (96, "*", 9, "90*9=810, 6*9=54, 810+54=864"),
        (11, "*", 4, "10*4=40, 1*4=4, 40+4=44"),
        (10, "*", 7, "10*7=70"),
        (3, "*", 4, "3*4=12"),
        (7, "*", 36, "7*30=210, 7*6=42, 210+42=252"),  # b has more digits: b is split
        (20, "*", 13, "20*13=260"),  # a has one part: nothing to split
        (24, "*", 13, "20*13=260, 4*13=52, 260+52=312"),  # both have two parts: a is split
        (345, "*", 2, "300*2=600, 40*2=80, 5*2=10, 600+80=680, 680+10=690"),
        (864, "/", 9, "9*90=810, 864-810=54, 54/9=6, 90+6=96"),
        (36, "/", 9, "36/9=4"),
        (1234, "/", 2, "2*600=1200, 1234-1200=34, 2*10=20, 34-20=14, 14/2=7, 600+10=610, 610+7=617"),
    ],
)
def test_work_line_worked_examples(a: int, op: str, b: int, work: str) -> None:
    assert work_line(a, op, b) == work


@pytest.mark.parametrize(
    ("a", "op", "b", "match"),
    [
        (1.0, "+", 2, r"a=1\.0; allowed: an integer >= 0"),
        (1, "+", -2, r"b=-2; allowed: an integer >= 0"),
        (True, "*", 2, r"a=True; allowed"),
        ("12", "+", 2, r"a='12'; allowed"),
        (1, "^", 2, r"operation '\^'; allowed: one of \+, -, \*, /"),
        (1, "+-", 2, r"operation '\+-'; allowed"),
        (1, "", 2, r"operation ''; allowed"),
        (7, "/", 2, r"7/2 is not an exact division; allowed"),
        (7, "/", 0, r"7/0 is not an exact division; allowed"),
    ],
)
def test_work_line_rejects_bad_input(a, op, b, match) -> None:
    with pytest.raises(ValueError, match=match):
        work_line(a, op, b)


def test_place_parts() -> None:
    assert place_parts(1205) == [1000, 200, 5]
    assert place_parts(7) == [7] and place_parts(0) == [] and place_parts(90) == [90]
    with pytest.raises(ValueError, match=r"n=-5; allowed: an integer >= 0"):
        place_parts(-5)


def _operands(rng: random.Random) -> tuple[int, str, int]:
    """One operation in arith's ranges (results 1..9,999, stated operands <= 100), or a wider one."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randint(1, 9_999), "+", rng.randint(1, 100)
    if kind == 1:
        a = rng.randint(2, 9_999)
        return a, "-", rng.randint(1, min(100, a - 1))
    if kind == 2:
        if rng.random() < 0.3:  # a first step: two stated quantities
            return rng.randint(2, 40), "*", rng.randint(2, 30)
        a = rng.randint(1, 500)  # a later step: a result times a factor or price, product <= 1,000-ish
        return a, "*", rng.randint(2, min(20, max(2, 1000 // a)))
    if kind == 3:
        b = rng.randint(2, 25)
        return b * rng.randint(1, 9_999 // b), "/", b
    op = rng.choice("+-*/")  # well outside arith's ranges: the rules hold for any operands
    a, b = rng.randint(0, 10**7), rng.randint(1, 10**5)
    return (a * b if op == "/" else a), op, b


def test_every_sub_operation_is_true_and_easy() -> None:
    rng = random.Random(8)
    for _ in range(5_000):
        a, op, b = _operands(rng)
        work = work_line(a, op, b)
        subs = _subs(work)
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
        assert subs[-1][3] == value, work  # the work ends with the result
        assert all(_true(*s) for s in subs), work
        # the calculator-annotation check agrees on every sub-operation
        assert not annotation_errors(" ".join(f"<<{x}{o}{y}={r}>>{r}" for x, o, y, r in subs))
        if len(subs) == 1:
            assert subs[0][:3] == (a, op, b)
            continue
        for x, o, y, r in subs:
            # a product or quotient has one operand, or its result, with a single nonzero digit (96*9 is
            # 90*9 and 6*9; 864/9 is 9*90, then 54/9=6); sums and differences put partial results together
            assert o in "+-" or min(len(place_parts(v)) for v in (x, y, r)) <= 1, work
        if op in "+-":  # b's parts, largest first, each applied once
            assert [y for _, _, y, _ in subs] == place_parts(b)


def test_annotation_work_reads_what_was_written() -> None:
    assert annotation_work("70-19", "51") == "70-19: 70-10=60, 60-9=51"
    assert annotation_work("10*7", "70") == "10*7=70"
    # a slip is worked correctly up to its last sub-operation, which gives the written (false) result
    assert annotation_work("70-19", "52") == "70-19: 70-10=60, 60-9=52"
    assert annotation_work("96*9", "886") == "96*9: 90*9=810, 6*9=54, 810+54=886"
    assert annotation_work("10*7", "71") == "10*7=71"
    # anything that is not two plain integers and one operator is the annotation as written
    for expression, result in [
        ("(3+4)*2", "14"),
        ("1.5*2", "3"),
        ("7/2", "3.5"),
        ("5/0", "0"),
        ("48/2", "24.0"),
        ("1,000*2", "2,000"),
        ("05+1", "6"),
        ("x+1", "y"),
        ("", ""),
        ("1234567*2", "2469134"),  # longer than MAX_WORK_DIGITS
        ("2+3+4", "9"),
    ]:
        assert annotation_work(expression, result) == f"{expression}={result}"
    rng = random.Random(3)
    alphabet = "0123456789+-*/=.,() x<>"
    for _ in range(2_000):  # hostile text never raises
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert isinstance(annotation_work(text, text[::-1]), str)


def test_inline_work_goes_right_before_each_annotation() -> None:
    solution = (
        "He gets 26 from Max, so 71+26=<<71+26=97>>97 dollars.\n"
        "He buys 4, so 97*4=<<97*4=388>>388 dollars.\n"
        "She has 10, so 10*7=<<10*7=70>>70 dollars.\n"
        "#### 70"
    )
    assert inline_work(solution) == (
        "He gets 26 from Max, so 71+26: 71+20=91, 91+6=97, 71+26=<<71+26=97>>97 dollars.\n"
        "He buys 4, so 97*4: 90*4=360, 7*4=28, 360+28=388, 97*4=<<97*4=388>>388 dollars.\n"
        "She has 10, so 10*7=<<10*7=70>>70 dollars.\n"  # nothing to split: unchanged
        "#### 70"
    )
    # a slipped annotation gets the work that ends in its written result, as annotation_work writes it
    slipped = "so 70-19=<<70-19=52>>52 left."
    assert inline_work(slipped) == "so 70-19: 70-10=60, 60-9=52, 70-19=<<70-19=52>>52 left."
    for text in ("", "#### 5", "no annotation here", "so (3+4)*2=<<(3+4)*2=14>>14"):
        assert inline_work(text) == text


def test_inline_work_of_gold_solutions_is_all_true() -> None:
    verifier = MathVerifier()
    changed = 0
    for task in generate_tasks("train", 300, seed=5, min_steps=1, max_steps=4):
        worked = inline_work(task.solution or "")
        changed += worked != task.solution
        assert not arithmetic_errors(worked)  # the annotations, their echoes and the work are true
        assert verifier.check(task, worked).correct
        for x, op, y, r in _SUB.findall(worked):
            assert _true(int(x), op, int(y), int(r)), worked
    assert changed > 250  # most gold solutions have an operation worth splitting


def test_the_work_line_carries_out_the_plan(tasks: list[Task], graph: KnowledgeGraph) -> None:
    verifier = MathVerifier()
    for task in tasks:
        completion = thinking_solution(task, graph, work=True)
        parsed = parse_thinking(completion)
        assert parsed.well_formed and parsed.answer == task.solution
        assert verifier.check(task, completion).correct
        lines = dict(line.split(": ", 1) for line in (parsed.thinking or "").split("\n"))
        assert list(lines) == ["Concepts", "Example", "Known", "Plan", "Work"]
        pieces = lines["Work"].split("; ")
        plan = lines["Plan"].split(", ")
        steps = re.findall(r"<<([^=]*)=(\d+)>>", task.solution or "")
        assert len(pieces) == len(plan) == len(steps) == task.steps
        for piece, expression, (annotated, result) in zip(pieces, plan, steps, strict=True):
            assert expression == annotated
            assert piece.startswith(f"{expression}: " if ", " in piece else f"{expression}=")
            subs = _subs(piece)
            assert subs[-1][3] == int(result)  # what the answer line then copies
            assert all(_true(*s) for s in subs), piece
        # without work the thinking is the same but for the Work line
        assert thinking_solution(task, graph) == completion.replace(f"\nWork: {lines['Work']}", "")


def test_pinned_work_line() -> None:
    task = generate_tasks("train", 2, seed=3)[1]  # the module docstring's example
    assert thinking_lines(task, None, task.solution or "", work=True).split("\n")[-1] == (
        "Work: 10*7=70; 70-19: 70-10=60, 60-9=51; 51-15: 51-10=41, 41-5=36; 36/9=4"
    )
    assert refined_thinking(task, task.solution or "", work=True) == (
        "Plan: 10*7, 70-19, 51-15, 36/9\n"
        "Work: 10*7=70; 70-19: 70-10=60, 60-9=51; 51-15: 51-10=41, 41-5=36; 36/9=4"
    )
    assert refined_thinking(task, task.solution or "") == "Plan: 10*7, 70-19, 51-15, 36/9"
    # GSM8K text: "48/2 = <<48/2=24>>24" and "48+24" work as any other annotation
    assert thinking_lines(T4, None, T4.solution or "", work=True).split("\n")[-1] == (
        "Work: 48/2: 2*20=40, 48-40=8, 8/2=4, 20+4=24; 48+24: 48+20=68, 68+4=72"
    )
    odd = "So (3+4)*2=<<(3+4)*2=14>>14 and 14/4=<<14/4=3.5>>3.5 and 7*9=<<7*9=63>>63.\n#### 63"
    assert thinking_lines(T4, None, odd, work=True).split("\n")[-1] == "Work: (3+4)*2=14; 14/4=3.5; 7*9=63"


def test_work_false_is_the_default_output(tasks: list[Task], graph: KnowledgeGraph) -> None:
    graph2 = KnowledgeGraph.build([T2])
    pinned = (
        "<|thinking|>\nConcepts: time, rate, loss\nKnown: time 3, rate 8, loss 4\nPlan: 3*8, 24-4\n"
        "<|/thinking|>\n" + (T2.solution or "")
    )
    assert thinking_solution(T2, graph2, work=False) == thinking_solution(T2, graph2) == pinned
    assert thinking_solution(T2, graph2, work=True) == pinned.replace(
        "24-4\n", "24-4\nWork: 3*8=24; 24-4=20\n"
    )
    recipe = load_recipe("arith")
    prompts = [format_prompt(recipe, t) for t in tasks[:80]]
    default = thinking_examples(
        tasks[:80], prompts, graph, reflect_fraction=0.5, seed=3, confirm_fraction=0.3
    )
    off = thinking_examples(
        tasks[:80], prompts, graph, reflect_fraction=0.5, seed=3, confirm_fraction=0.3, work=False
    )
    assert off == default


def test_reflection_examples_show_the_slip_in_the_work(tasks: list[Task], graph: KnowledgeGraph) -> None:
    recipe = load_recipe("arith")
    prompts = [format_prompt(recipe, t) for t in tasks]
    plain = thinking_examples(tasks, prompts, graph, reflect_fraction=1.0, seed=4, max_chars=10**6)
    worked = thinking_examples(
        tasks, prompts, graph, reflect_fraction=1.0, seed=4, max_chars=10**6, work=True
    )
    for task, prompt, (p0, c0), (p1, c1) in zip(tasks, prompts, plain, worked, strict=True):
        # the same slip is planted with and without work: only the Work lines differ
        drop = re.compile(r"\nWork: [^\n]*")
        assert (drop.sub("", p1), drop.sub("", c1)) == (p0, c0)
        attempt = parse_thinking(p1[len(prompt) :])
        refined = parse_thinking(c1)
        assert attempt.well_formed and refined.well_formed
        step = int(re.match(r"Step (\d+) is wrong: ", refined.reflection or "").group(1))
        work = (attempt.thinking or "").split("\nWork: ")[1].split("; ")
        false = [(i + 1, s) for i, piece in enumerate(work) for s in _subs(piece) if not _true(*s)]
        # exactly one false line of work: the last sub-operation of the slipped step, whose result the
        # attempt's answer line copied
        assert len(false) == 1 and false[0][0] == step and false[0][1] == _subs(work[step - 1])[-1]
        wrong_result = re.findall(r"=(\d+)>>", attempt.answer)[step - 1]
        assert false[0][1][3] == int(wrong_result)
        refined_work = (refined.thinking or "").split("\nWork: ")[1].split("; ")
        assert all(_true(*s) for piece in refined_work for s in _subs(piece))
        assert refined.thinking == refined_thinking(task, task.solution or "", work=True)


def test_plant_slip_work_matches_the_wrong_solution() -> None:
    wrong = plant_slip(T2.solution or "", random.Random(1))
    assert wrong is not None
    line = thinking_lines(T2, None, wrong.wrong, work=True).split("\n")[-1]
    results = re.findall(r"<<[^=]*=(\d+)>>", wrong.wrong)
    assert [piece.rsplit("=", 1)[1] for piece in line[len("Work: ") :].split("; ")] == results
