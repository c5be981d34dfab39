"""Process check of GSM8K calculator annotations: every `<<a*b=c>>c` a solution writes must be true.

An answer-only verifier accepts a solution that reaches the gold answer through wrong arithmetic
("8*23=<<8*23=164>>164" after a copying slip that cancels out). On the tiny model 32% of the best-of-n
samples that an answer-only check called correct carried such a false annotation (docs/benchmarks.md,
"Why the first learning runs did not learn"), and training on them teaches the false facts. The
annotations make each step checkable exactly, so a "chosen" must pass this check as well as the answer
check: nothing is taken on trust.

Checks per annotation: the expression left of `=` parses with the safe grammar of `_expr` (never eval),
its exact value equals the number right of `=`, and the text right after `>>` repeats that number.
Anything that is not a plain rational expression (a symbol, a unit) is left to the answer check: the check
is for arithmetic, not for notation.

`arithmetic_errors` also checks the plain equations written outside the annotations in compact form,
`a+b=c` with integer operands and no spaces: the place-value work of `knowledge/work.py`
(`71+20=91, 91+6=97, 71+26=<<71+26=97>>97`), which a model can get wrong while its annotation is right.
The compact form keeps the check exact: of GSM8K train's 7,473 reference solutions, 107 write such an
equation, and the 2 that fail are false (`14*20=140`, `3/1=1`); clock times (`6:00+48=6:48`), decimals,
fractions, percentages and chains (`10-3-2=5`) are not compact integer equations and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from selfimprove.verify._expr import NotRational, Rejected, exact_value, parse

# <<expression=result>>echo ; the echo is the number written after the annotation
_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>([-+]?[\d,]*\.?\d*(?:/\d+)?)")
# a plain `a op b=c` outside any annotation: integer operands (bounded, so int() and * stay cheap) and no
# spaces, not part of a longer expression, a decimal, a fraction, a percentage, a clock time or money
_PLAIN_EQUATION = re.compile(
    r"(?<![\w.,:/$=+\-*(^])(\d{1,18})([-+*/])(\d{1,18})=(\d{1,40})(?![\w%^]|[.,/:]\d)"
)
_CALCULATOR = re.compile(r"<<[^<>]*>>")
_REL_TOL = Fraction(1, 10**6)  # decimal results ("7/3=2.33") may be rounded


@dataclass(frozen=True)
class AnnotationError:
    """One false annotation or plain equation: what was written and what it should have said."""

    annotation: str
    reason: str


def _value(text: str) -> tuple[Fraction, bool] | None:
    try:
        return exact_value(parse(text.replace(",", "").strip()))
    except (Rejected, NotRational, ValueError, RecursionError):
        return None


def _close(a: Fraction, b: Fraction, inexact: bool) -> bool:
    if a == b:
        return True
    # a rounded decimal on either side: relative tolerance, and two-decimal rounding for money
    return inexact and (abs(a - b) <= _REL_TOL * max(abs(a), abs(b)) or abs(a - b) <= Fraction(1, 200))


def annotation_errors(text: str) -> list[AnnotationError]:
    """The false or malformed annotations in `text`, in order (empty when every one checks out)."""
    return [error for _, error in _annotation_matches(text)]


def _annotation_matches(text: str) -> Iterator[tuple[re.Match[str], AnnotationError]]:
    for match in _ANNOTATION.finditer(text):
        expression, result, echo = match.groups()
        written = f"<<{expression}={result}>>{echo}"
        lhs, rhs = _value(expression), _value(result)
        if rhs is None or lhs is None:
            if rhs is None and lhs is not None:
                yield match, AnnotationError(written, f"result {result!r} is not a number")
            continue  # a non-numeric expression: notation, not arithmetic
        (lhs_value, lhs_inexact), (rhs_value, rhs_inexact) = lhs, rhs
        if not _close(lhs_value, rhs_value, lhs_inexact or rhs_inexact or lhs_value.denominator != 1):
            yield match, AnnotationError(written, f"{expression} is {_show(lhs_value)}, not {result}")
            continue
        echoed = _value(echo) if echo else None
        if echoed is not None and not _close(echoed[0], rhs_value, echoed[1] or rhs_inexact):
            yield match, AnnotationError(written, f"the annotation says {result} but the text says {echo}")


def arithmetic_errors(text: str) -> list[AnnotationError]:
    """The false annotations and false plain `a op b=c` equations in `text`, in the order written."""
    found = [(match.start(), error) for match, error in _annotation_matches(text)]
    # blank the annotations out, keeping every position, so an annotation's own `a op b=c` is not read twice
    plain = _CALCULATOR.sub(lambda m: " " * len(m.group()), text)
    for match in _PLAIN_EQUATION.finditer(plain):
        a, op, b, written = int(match[1]), match[2], int(match[3]), int(match[4])
        if op == "/" and b == 0:
            found.append((match.start(), AnnotationError(match[0], f"{a}/{b} divides by zero")))
            continue
        value = {"+": a + b, "-": a - b, "*": a * b}[op] if op != "/" else Fraction(a, b)
        if value != written:
            reason = f"{a}{op}{b} is {_show(Fraction(value))}, not {written}"
            found.append((match.start(), AnnotationError(match[0], reason)))
    return [error for _, error in sorted(found, key=lambda pair: pair[0])]


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"
