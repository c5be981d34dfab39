"""Place-value work: one arithmetic operation broken into sub-operations a tiny model gets right.

The tiny model's wrong answers on 4-step arith problems are almost all arithmetic slips inside a correct plan
(`40-21=<<40-21=29>>29`, `96*9=<<96*9=886>>886`: 64 of 65 wrong greedy answers), so the thinking that helps
it is a scratchpad that splits each operation by place value, one easy step at a time:

    29+12   ->  29+10=39, 39+2=41                          add b's parts, largest first
    40-21   ->  40-20=20, 20-1=19                          subtract b's parts, largest first
    96*9    ->  90*9=810, 6*9=54, 810+54=864               split one operand, add the partial products
    864/9   ->  9*90=810, 864-810=54, 54/9=6, 90+6=96      split the quotient, subtract as you go

An operation with nothing to split (`3+4`, `202-8`, `10*7`, `36/9`) is written once: `a op b=r`.
`work_line` gives the work of an exact integer operation; `annotation_work` gives the work of one calculator
annotation as a solution wrote it, including a wrong one, and never raises.
"""

from __future__ import annotations

import re

__all__ = ["MAX_WORK_DIGITS", "annotation_work", "inline_work", "place_parts", "work_line"]

_OPS = "+-*/"
# Operands longer than this are not split in `annotation_work`: GSM8K's own numbers stay far below it, and a
# 30-digit operand would make a 30-part line that teaches nothing.
MAX_WORK_DIGITS = 6
_TWO_INTEGERS = re.compile(r"(0|[1-9]\d*)([-+*/])(0|[1-9]\d*)")
_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)")
# a GSM8K step's "a op b=<<a op b=r>>": the text an inline work goes in front of
_ANNOTATED_STEP = re.compile(r"(\d+[-+*/]\d+)=<<(\d+[-+*/]\d+)=(\d+)>>")


def place_parts(n: int) -> list[int]:
    """The nonzero place-value parts of `n`, largest first: 1205 -> [1000, 200, 5]; 0 -> []."""
    if type(n) is not int or n < 0:
        raise ValueError(f"n={n!r}; allowed: an integer >= 0")
    digits = str(n)
    return [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]


def _check(a: int, op: str, b: int) -> None:
    if not isinstance(op, str) or op not in _OPS or len(op) != 1:
        raise ValueError(f"operation {op!r}; allowed: one of {', '.join(_OPS)}")
    for name, value in (("a", a), ("b", b)):
        if type(value) is not int or value < 0:  # bool is an int subclass, and not a number here
            raise ValueError(f"{name}={value!r}; allowed: an integer >= 0")
    if op == "/" and (b == 0 or a % b):
        raise ValueError(f"{a}/{b} is not an exact division; allowed: a/b with b > 0 dividing a")


def _value(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def _sub_operations(a: int, op: str, b: int) -> list[tuple[int, str, int, int]]:
    """The sub-operations (x, op, y, result) of `a op b`, in order; one when there is nothing to split."""
    if op in "+-":
        parts = place_parts(b)
        if len(parts) <= 1:
            return [(a, op, b, _value(a, op, b))]
        out, running = [], a
        for part in parts:
            out.append((running, op, part, _value(running, op, part)))
            running = out[-1][3]
        return out
    if op == "*":
        # when both operands have two or more parts only the first is split; else the longer (a on a tie)
        both = len(place_parts(a)) >= 2 and len(place_parts(b)) >= 2
        split_a = both or len(str(a)) >= len(str(b))
        parts = place_parts(a if split_a else b)
        if len(parts) <= 1:
            return [(a, op, b, a * b)]
        products = [(p, "*", b, p * b) if split_a else (a, "*", p, a * p) for p in parts]
        return products + _sums([r for *_, r in products])
    quotient = a // b
    parts = place_parts(quotient)
    if len(parts) <= 1:
        return [(a, op, b, quotient)]
    out, remainder = [], a
    for part in parts[:-1]:
        out.append((b, "*", part, b * part))
        out.append((remainder, "-", b * part, remainder - b * part))
        remainder -= b * part
    out.append((remainder, "/", b, parts[-1]))
    return out + _sums(parts)


def _sums(values: list[int]) -> list[tuple[int, str, int, int]]:
    """Adding `values` left to right: [810, 54] -> 810+54=864."""
    out, running = [], values[0]
    for value in values[1:]:
        out.append((running, "+", value, running + value))
        running += value
    return out


def _write(sub_operations: list[tuple[int, str, int, int]]) -> str:
    return ", ".join(f"{x}{op}{y}={r}" for x, op, y, r in sub_operations)


def work_line(a: int, op: str, b: int) -> str:
    """The place-value work of `a op b`, ending with its result: `work_line(40, "-", 21)` is
    "40-20=20, 20-1=19", `work_line(36, "/", 9)` is "36/9=4". Every sub-operation written is true.

    Raises ValueError for an operation other than + - * /, an operand that is not an integer >= 0, or a
    division that is not exact (arith divides exactly).
    """
    _check(a, op, b)
    return _write(_sub_operations(a, op, b))


def annotation_work(expression: str, result: str) -> str:
    """The work of one calculator annotation `<<expression=result>>` as a solution wrote it; never raises.

    A true two-integer operation that splits reads "70-19: 70-10=60, 60-9=51" (the operation, then its
    work); one with nothing to split reads "10*7=70". A FALSE one (a slip: `70-19=52`) is worked correctly
    up to its last sub-operation, which gives the written result: "70-19: 70-10=60, 60-9=52". That is
    where a model that copies its work into the answer makes the slip, so a reflection example shows the
    wrong step as one false line of work, as the model's own wrong attempt would. Anything else (not two
    plain integers with one operator, an operand over MAX_WORK_DIGITS digits, an inexact division, a result
    that is not an integer) is written as the annotation itself: "expression=result".
    """
    as_written = f"{expression}={result}"
    match = _TWO_INTEGERS.fullmatch(expression)
    written = result.strip()
    if match is None or _INTEGER.fullmatch(written) is None:
        return as_written
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    if max(len(match.group(1)), len(match.group(3))) > MAX_WORK_DIGITS or (op == "/" and (b == 0 or a % b)):
        return as_written
    subs = _sub_operations(a, op, b)
    x, sub_op, y, _ = subs[-1]
    subs[-1] = (x, sub_op, y, int(written))  # the written result, true or not
    if len(subs) == 1:
        return _write(subs)
    return f"{expression}: {_write(subs)}"


def inline_work(solution: str) -> str:
    """`solution` with each operation's place-value work written right before the annotation that uses it.

    "so 71+26=<<71+26=97>>97" becomes "so 71+26: 71+20=91, 91+6=97, 71+26=<<71+26=97>>97"; an operation
    with nothing to split (`10*7`) is left as it is. Unlike a Work line in the thinking, no result has to
    be carried far: the answer line repeats the last sub-operation's result at once (docs/benchmarks.md,
    "A scratchpad in the answer lines"). The work is `annotation_work`'s, so a false annotation gets work
    that ends in its written result.
    """

    def with_work(match: re.Match[str]) -> str:
        work = annotation_work(match.group(2), match.group(3))
        return f"{work}, {match.group(0)}" if ":" in work else match.group(0)

    return _ANNOTATED_STEP.sub(with_work, solution)
