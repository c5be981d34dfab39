"""Warm-start data for thinking: arith solutions with a thinking block, and reflections that fix a slip.

A round-0 completion (selfimprove/tasks/thinking.py) thinks in four short lines (five with `work=True`), then
answers (train seed 3, problem 1, with a graph of that split's first 5,000 problems):

    <|thinking|>
    Concepts: time, rate, loss, pear, price            the question's concepts (graph retrieval)
    Example: 12*10, 120-22, 98-68, 30/5                the plan of the nearest solved problem (optional)
    Known: time 10, rate 7, loss 19, loss 15, price 9  the stated quantities with their roles
    Plan: 10*7, 70-19, 51-15, 36/9                     the operations in order
    Work: 10*7=70; 70-19: 70-10=60, 60-9=51; 51-15: 51-10=41, 41-5=36; 36/9=4
    <|/thinking|>
    He works 10 hours at 7 an hour, so 10*7=<<10*7=70>>70 dollars.
    ...
    He buys pears at 9 each, so 36/9=<<36/9=4>>4 pears.
    #### 4

The thinking is the computation in short form, not decoration: Known says which number plays which role,
the Example shows the operations a problem of the same structure needed, and Plan is the exact order of
operations that the answer lines then carry out (each later operand is the previous result). The first two
lines are what `Retrieval.thinking_prefix()` gives, so with retrieval on, the search can put them in the
prompt and the model continues from "Known:", exactly as it learned here.

The Work line (only with `work=True`; selfimprove/knowledge/work.py) does each planned operation by place
value, one easy sub-operation at a time, and each answer line copies its result: the tiny model's wrong
answers on 4-step problems were arithmetic slips in a correct plan (64 of 65 wrong greedy answers, e.g.
`96*9=<<96*9=886>>886`), so the arithmetic, not the plan, is where thinking can help it. Measured, it did
not (docs/benchmarks.md, "PRefLexOR"): the Plan line above it already needs every intermediate result (its
later operands), so the model does the arithmetic unaided before any work is written.

Reflection examples (PRefLexOR's recursive refinement) put a wrong first attempt in the prompt: the round-0
completion with one planted slip, a step whose result is off, carried forward into every later step and the
final answer. The completion names the wrong step and its true value inside `<|reflect|>`, then writes a
correct refined round whose thinking is its Plan line only (the Concepts and Known lines of the attempt just
above still hold), and its Work line with `work=True`. The slip is in the prompt, so no loss is spent
teaching the mistake; with `work=True` the attempt's Work line shows it where a model would make it, in the
last sub-operation of the slipped step (`70-19: 70-10=60, 60-9=52`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from selfimprove.knowledge.extract import Extraction, extract, extract_question
from selfimprove.knowledge.graph import KnowledgeGraph
from selfimprove.knowledge.retrieve import Retrieval
from selfimprove.knowledge.work import annotation_work
from selfimprove.tasks import arith
from selfimprove.tasks.arith import evaluate_expression
from selfimprove.tasks.task import Task
from selfimprove.tasks.thinking import format_thinking

__all__ = [
    "CONFIRMATION",
    "MAX_REFLECT_CHARS",
    "Slip",
    "named_plan",
    "plant_slip",
    "refined_thinking",
    "thinking_examples",
    "thinking_lines",
    "thinking_solution",
    "work_text",
]

# An arith-format step: "a op b=<<a op b=r>>r"; the slip rewrites all four numbers of the line.
_STEP = re.compile(r"(\d+)([-+*/])(\d+)=<<(\d+)([-+*/])(\d+)=(\d+)>>(\d+)")
_MAX_VALUE = 9_999  # arith's bound on every result
# Prompt + completion characters of a reflection example at most. The tiny tokenizer makes about 2 characters
# a token of this text, so this keeps reflection examples at most ~460 of the tiny model's 512 positions:
# every 1-2 step problem fits, three in four 3-step ones, no 4-step one (benchmarks/thinking_length.py).
MAX_REFLECT_CHARS = 800
# What a reflection on a right attempt says (confirmation examples of `thinking_examples`).
CONFIRMATION = "Every step checks out."
_DELTAS = (1, -1, 2, -2, 3, -3, 10, -10)  # slips a tiny model makes: off by one, a carried ten
_THINGS = (*arith._OBJECTS, *arith._CONTAINERS, arith._DOLLARS)
_PLURAL = {t.singular: t.plural for t in _THINGS}
_SINGULAR = {t.plural: t.singular for t in _THINGS}


_TWO_OPERANDS = re.compile(r"(\d+)([-+*/])(\d+)")
_NAMES = "abcdefghijklmnopqrstuvwxyz"


def named_plan(ext: Extraction) -> str:
    """The plan with every result named instead of used: "a=10*7, b=a-19, c=b-15, d=c/9".

    The plain Plan line ("10*7, 70-19, 51-15, 36/9") uses each intermediate result as a later operand, so
    writing it means doing all the arithmetic before the answer shows any of it (docs/benchmarks.md,
    "PRefLexOR"); named, the plan holds only which quantities combine how, and the answer computes.
    """
    parts, results = [], []  # results: (name, value as written) of the steps so far
    for i, step in enumerate(ext.steps):
        name = _NAMES[i % len(_NAMES)]
        match = _TWO_OPERANDS.fullmatch(step.expression)
        expression = step.expression
        if match is not None:
            operands = [match.group(1), match.group(3)]
            for j, operand in enumerate(operands):
                if j < len(step.from_previous) and step.from_previous[j]:
                    earlier = [n for n, value in results if value == operand]
                    if earlier:
                        operands[j] = earlier[-1]
            expression = f"{operands[0]}{match.group(2)}{operands[1]}"
        parts.append(f"{name}={expression}")
        results.append((name, step.result))
    return ", ".join(parts)


def thinking_lines(
    task: Task,
    graph: KnowledgeGraph | None,
    solution: str,
    *,
    example: bool = True,
    work: bool = False,
    named: bool = False,
) -> str:
    """The thinking block's lines (without tags) for `task` answered by `solution`.

    Concepts (and, with `example`, the Example line) come from graph retrieval, excluding the task itself;
    without a graph the Concepts line is the question's own concepts and there is no Example line. With
    `work`, a Work line after Plan works each of the solution's annotations by place value (`work_text`);
    with `named`, the Plan line names each result instead of using it (`named_plan`).
    """
    if graph is not None:
        retrieval = graph.retrieve(task.question, examples=1 if example else 0, exclude=(task.id,))
    else:
        retrieval = Retrieval(concepts=extract_question(task.question).concepts, relations=(), examples=())
    ext = extract(task.question, solution)
    lines = retrieval.thinking_prefix()
    if ext.quantities:
        lines += f"Known: {ext.known}\n"
    if ext.steps:
        lines += _plan_lines(ext, work=work, named=named)
    return lines.rstrip("\n")


def _plan_lines(ext: Extraction, *, work: bool, named: bool) -> str:
    """The Plan line, plain or named, and the Work line after it when `work`."""
    plan = f"Plan: {named_plan(ext) if named else ext.plan}"
    return f"{plan}\nWork: {work_text(ext)}" if work else plan


def work_text(ext: Extraction) -> str:
    """The Work line's text: each annotation's place-value work (`annotation_work`), in order, joined by
    "; ". An annotation is worked as written, so a slipped one shows its slip as one false line of work."""
    return "; ".join(annotation_work(step.expression, step.result) for step in ext.steps)


def thinking_solution(
    task: Task, graph: KnowledgeGraph | None, *, work: bool = False, named: bool = False
) -> str:
    """The round-0 completion for `task`: thinking lines (with the Work line when `work`), then the task's
    own solution lines."""
    if not task.solution:
        raise ValueError(f"task {task.id} has no solution; thinking data needs one")
    return format_thinking(thinking_lines(task, graph, task.solution, work=work, named=named), task.solution)


@dataclass(frozen=True)
class Slip:
    """A solution with one wrong step carried forward, and what a reflection says about it."""

    wrong: str  # the solution with the slip
    step: int  # 1-based index of the wrong step
    reflection: str  # "Step 2 is wrong: 70-19=51, not 52."


def _carry(steps: list[tuple[int, str, int, int]], at: int, delta: int) -> list[tuple[int, int]] | None:
    """New (a, result) per step when step `at`'s result is off by `delta` and later steps chain on it."""
    out = [(a, r) for a, _, _, r in steps]
    previous = None
    for i, (a, op, b, _) in enumerate(steps):
        if i < at:
            continue
        new_a = a if i == at else previous
        value = evaluate_expression(f"{new_a}{op}{b}") + (delta if i == at else 0)
        if value.denominator != 1 or not 1 <= value <= _MAX_VALUE:
            return None  # a carried value must stay a whole count, as every arith result is
        out[i] = (new_a, int(value))
        previous = int(value)
    return out


def _inflect(tail: str, old: int, new: int) -> str:
    """The unit after a result, in the number the new result needs ("1 pear." -> "4 pears.")."""
    if (old == 1) == (new == 1):
        return tail
    table = _SINGULAR if new == 1 else _PLURAL
    for unit in sorted(table, key=len, reverse=True):  # "toy cars" before "cars"
        if tail.startswith(f" {unit}") and not tail[len(unit) + 1 : len(unit) + 2].isalpha():
            return f" {table[unit]}{tail[len(unit) + 1 :]}"
    return tail


def plant_slip(solution: str, rng: random.Random) -> Slip | None:
    """Make one step of an arith-format solution wrong (its result off by a small amount) and carry the
    wrong value through every later step and the final `#### N`; None when no step can take a slip."""
    lines = solution.split("\n")
    found = [(i, m) for i, line in enumerate(lines) if (m := _STEP.search(line))]
    steps = [(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(7))) for _, m in found]
    if not found or lines[-1].strip() != f"#### {steps[-1][3]}":
        return None
    # only a chain (each step's first operand is the previous result) can carry the slip forward
    chained = all(steps[i][0] == steps[i - 1][3] for i in range(1, len(steps)))
    candidates = list(range(len(steps))) if chained else [len(steps) - 1]
    rng.shuffle(candidates)
    for at in candidates:
        deltas = list(_DELTAS)
        rng.shuffle(deltas)
        for delta in deltas:
            carried = _carry(steps, at, delta)
            if carried is None:
                continue
            wrong = list(lines)
            for (i, m), (_, op, b, old), (a, r) in zip(found, steps, carried, strict=True):
                expr = f"{a}{op}{b}"
                line = lines[i]
                wrong[i] = f"{line[: m.start()]}{expr}=<<{expr}={r}>>{r}{_inflect(line[m.end() :], old, r)}"
            wrong[-1] = f"#### {carried[-1][1]}"
            a, op, b, right = steps[at]
            reflection = f"Step {at + 1} is wrong: {a}{op}{b}={right}, not {carried[at][1]}."
            return Slip("\n".join(wrong), at + 1, reflection)
    return None


def refined_thinking(task: Task, solution: str, *, work: bool = False, named: bool = False) -> str:
    """The thinking of a refined round (r >= 1): the Plan line only, and the Work line when `work`. The
    Concepts and Known lines of the round just above still hold (that round is in the prompt); what a
    refinement changes is the plan and its arithmetic."""
    return _plan_lines(extract(task.question, solution), work=work, named=named)


def thinking_examples(
    tasks: Sequence[Task],
    prompts: Sequence[str],
    graph: KnowledgeGraph,
    *,
    reflect_fraction: float,
    seed: int,
    max_chars: int = MAX_REFLECT_CHARS,
    confirm_fraction: float = 0.0,
    work: bool = False,
    named: bool = False,
) -> list[tuple[str, str]]:
    """One (prompt, completion) SFT example per task, in order.

    A `reflect_fraction` share (drawn per task from a generator seeded by `seed`) are reflection examples:
    the prompt is `prompt + wrong attempt + "\\n"` and the completion a reflection plus a correct refined
    round (`refined_thinking`). The rest get the round-0 completion of `thinking_solution`, and so does a
    drawn task whose solution cannot take a slip or whose reflection example would pass `max_chars`
    characters (prompt and completion together: the tiny model has 512 positions).

    A `confirm_fraction` share of the reflection examples shows a RIGHT attempt instead, reflected on with
    CONFIRMATION and repeated: without them every reflection the model ever saw found a slip, so it
    "finds" one in a right answer too (docs/benchmarks.md, "PRefLexOR").

    With `work`, every thinking block (attempt, refined round, round 0) has the Work line. A slipped
    attempt's Work line is the work of what that attempt wrote: its slipped step is worked correctly but
    for the last sub-operation, which gives the slipped result (`70-19: 70-10=60, 60-9=52`), as a model
    that slips inside its work and copies the result into the answer would write it; the refined round's
    Work line is all true. `work` draws nothing from the generator, so the same tasks get reflections.
    With `named`, every Plan line names its results (`named_plan`).
    """
    for name, value in (("reflect_fraction", reflect_fraction), ("confirm_fraction", confirm_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r}; allowed: a number in [0, 1]")
    if len(tasks) != len(prompts):
        raise ValueError(f"{len(tasks)} tasks but {len(prompts)} prompts; need one prompt per task")
    rng = random.Random(f"selfimprove.knowledge.thinking_examples/{seed}")
    out = []
    for task, prompt in zip(tasks, prompts, strict=True):
        if not task.solution:
            raise ValueError(f"task {task.id} has no solution; thinking data needs one")
        reflect = rng.random() < reflect_fraction
        # drawn only when asked for, so that confirm_fraction = 0 leaves the data of earlier builds unchanged
        if reflect and confirm_fraction > 0 and rng.random() < confirm_fraction:
            attempt = thinking_solution(task, graph, work=work, named=named)
            refined = refined_thinking(task, task.solution, work=work, named=named)
            completion = format_thinking(refined, task.solution, reflection=CONFIRMATION)
            if len(prompt) + len(attempt) + 1 + len(completion) <= max_chars:
                out.append((prompt + attempt + "\n", completion))
                continue
            reflect = False
        slip = plant_slip(task.solution, rng) if reflect else None
        if slip is not None:
            attempt = format_thinking(
                thinking_lines(task, graph, slip.wrong, work=work, named=named), slip.wrong
            )
            refined = refined_thinking(task, task.solution, work=work, named=named)
            completion = format_thinking(refined, task.solution, reflection=slip.reflection)
            if len(prompt) + len(attempt) + 1 + len(completion) <= max_chars:
                out.append((prompt + attempt + "\n", completion))
                continue
        out.append((prompt, thinking_solution(task, graph, work=work, named=named)))
    return out
