"""Math answer checking: extract a solution's final answer and decide whether it equals the gold answer.

The outcome reward of every search and eval (DESIGN §3). Two stages, cheapest first:
1. exact arithmetic on `Fraction`s (integers, decimals, fractions, percentages, scientific notation,
   `\\frac`, powers, factorials, perfect roots) by a whitelisted parser (`_expr`) with hard size bounds;
2. sympy, only for what is not a rational number (pi, irrational roots, symbols), built from constructors
   by the same parser and run in a child process that is killed at the deadline (`_symbolic`), so the
   timeout holds from any thread. No model text ever reaches `eval`, `sympify` or `parse_expr`.
A float answer equals an exact one within relative 1e-9 (1/3 vs 0.3333333333333) but no looser
(0.333 is not 1/3). Results are cached on the normalised strings.

GSM8K format: Cobbe et al., "Training Verifiers to Solve Math Word Problems", 2021 (`#### N` answers).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from fractions import Fraction

from selfimprove.tasks.task import Task
from selfimprove.verify._expr import (
    FUNCTIONS,
    Node,
    NotRational,
    Rejected,
    exact_value,
    parse,
    percent_alternatives,
)
from selfimprove.verify._symbolic import REL_TOL_INEXACT, WORKER
from selfimprove.verify.annotations import arithmetic_errors
from selfimprove.verify.base import Verdict

__all__ = ["MathVerifier", "clear_cache", "extract_answer", "is_equivalent"]

logger = logging.getLogger(__name__)

MAX_INPUT_CHARS = 10_000  # a longer "answer" is not an answer; is_equivalent says False at once
_CACHE_SIZE = 65_536

# ---------------------------------------------------------------------------------------------------------
# extraction

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_ANSWER_LINE = re.compile(r"^\s*(?:A|answer|final answer)\s*[:：](.*)$", re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"answer\s+is\s*:?\s*(.+?)(?:\.(?=\s|$)|$)",  # a sentence's final period, not a decimal point
    re.IGNORECASE | re.MULTILINE,
)
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K's <<48/2=24>> annotations repeat the number after them
_NUMBER = re.compile(
    r"(-?)\$?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?)"
)


def extract_answer(text: str) -> str | None:
    """The final answer of a solution, or None when it has none.

    Tried in order, each taking its last occurrence: `#### X`; `\\boxed{X}` (nested braces); a final
    answer line `A: X` / `Answer: X` (the form of GSM8K's example model solutions); "the answer is X";
    the last number. Strips `$`, thousands commas, trailing units and punctuation.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    for found in (_after_hashes(text), _last_boxed(text), _answer_line(text), _answer_is(text)):
        if found is not None:
            cleaned = _clean(found)
            if cleaned:
                return cleaned
    return _last_number(text)


def _after_hashes(text: str) -> str | None:
    matches = _HASHES.findall(text)
    return matches[-1] if matches else None


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, braces matched; `\\boxed 5` without braces too."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    if start >= len(text) or text[start] != "{":
        word = re.match(r"[^\s$]+", text[start:])
        return word.group() if word else None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None  # unclosed: the solution was cut off inside the box


def _answer_line(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    match = _ANSWER_LINE.match(lines[-1]) if lines else None
    return match.group(1).strip() if match and match.group(1).strip() else None


def _answer_is(text: str) -> str | None:
    for match in reversed(list(_ANSWER_IS.finditer(text))):
        if re.search(r"[\d\\]", match.group(1)):
            return match.group(1)
    return None


def _last_number(text: str) -> str | None:
    text = _CALCULATOR.sub(" ", text)
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    match = matches[-1]
    number = re.sub(r"\s+", "", match.group(2)).replace(",", "")
    # A minus is a sign only when no operand precedes it: "is -3" but not "5 - 3".
    before = text[: match.start()].rstrip()
    if match.group(1) and not (before and (before[-1].isdigit() or before[-1] in ")]}")):
        number = "-" + number
    return number


_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:,\d{3})+)(?!\d|,\d)")
_UNIT_TAIL = re.compile(r"^([-+]?\d[\d.]*(?:\s*/\s*\d+)?%?)\s+[A-Za-z]{2,}.*$", re.DOTALL)
_TEXT_TAIL = re.compile(r"\\(?:text|mbox|mathrm|textbf)\s*\{[^{}]*\}$")  # no leading \s*: quadratic


def _clean(answer: str) -> str:
    """Strip math delimiters, `$`, thousands commas, trailing units and punctuation from an answer."""
    answer = answer.strip()
    answer = re.sub(r"\\\$|\$|\\\(|\\\)|\\\[|\\\]", "", answer)
    answer = re.sub(r"\\!|\\,|\\;|\\:", "", answer).strip()
    answer = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), answer)
    answer = answer.rstrip(" .,;:!?")
    if _TEXT_TAIL.search(answer) and _TEXT_TAIL.sub("", answer).strip():
        answer = _TEXT_TAIL.sub("", answer).rstrip()
    unit = _UNIT_TAIL.match(answer)
    if unit:
        answer = unit.group(1)
    return answer.rstrip(" .,;:!?").strip()


# ---------------------------------------------------------------------------------------------------------
# normalisation: answer text -> the parser's grammar

_UNICODE = str.maketrans(
    {
        "−": "-",
        "–": "-",
        "×": "*",
        "·": "*",
        "÷": "/",
        "π": "pi",
        "√": "sqrt",
        "²": "^2",
        "³": "^3",
        "°": " ",
        "\u00a0": " ",
        "€": " ",
        "£": " ",
        "¥": " ",
        "₹": " ",
        "≈": "=",
    }
)
_DELIMITERS = re.compile(
    r"\\\$|\$|\\\(|\\\)|\\\[|\\\]|\\displaystyle|\\(?:[Bb]ig{1,2}[lr]?|left|right)(?![A-Za-z])"
)
_SPACING = re.compile(r"\\[,!;: ]|\\q?quad|~")
_TEXT_COMMANDS = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree")
_MULTIPLIERS = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_MULTIPLIER = re.compile(r"(\d)\s*(thousand|million|billion|trillion)\b", re.IGNORECASE)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}(?![A-Za-z])")
_KEEP_WORDS = FUNCTIONS | {"sqrt", "pi", "inf", "oo"}
_MATH_BEFORE = re.compile(r"[\d)\]}]")
_ARTICLE = re.compile(r"(?<![\\A-Za-z])[aA]\s+(?=[A-Za-z]{2,})")  # "a total of 5": an article, not a symbol


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _normalise(text: str) -> str:
    """Answer text in the parser's grammar: no delimiters, units, words, currency or thousands commas."""
    text = text.translate(_UNICODE).strip()
    boxed = _last_boxed(text)
    if boxed is not None:
        text = boxed
    text = _DELIMITERS.sub("", text)
    text = _SPACING.sub("", text).replace("{,}", ",")
    text = _DEGREES.sub(" ", text)
    text = re.sub(r"(?<=\S)\s*\\text\s*\{\s*[A-Za-z]\s*\}", " ", text)  # a one-letter unit: 5\text{ m}
    text = _TEXT_COMMANDS.sub(lambda m: f" {m.group(1)} ", text)
    text = text.replace("\\%", "%")
    text = re.sub(r"\b(?:per\s*cent|percent)\b", "%", text, flags=re.IGNORECASE)
    text = _MULTIPLIER.sub(lambda m: f"{m.group(1)}*10^{_MULTIPLIERS[m.group(2).lower()]}", text)
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    if re.fullmatch(r"\s*-?\d{1,3}(?: \d{3})+\s*", text):
        text = text.replace(" ", "")  # 1 234 567
    text = _drop_words(text)
    if "=" in text:
        text = text.rsplit("=", 1)[1]  # x = 5, or the last side of a chain a = b = 5
    text = re.sub(r"^\s*:", "", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".,;:?").strip()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _textual(text: str) -> str:
    """A word answer without delimiters, markup, case or punctuation: "\\text{Monday.}" -> "monday"."""
    boxed = _last_boxed(text)
    text = _DELIMITERS.sub("", boxed if boxed is not None else text)
    text = _TEXT_COMMANDS.sub(lambda m: m.group(1), text)
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _drop_words(text: str) -> str:
    """Remove leading words ("approximately 5") and cut trailing units ("12 apples", "5 cm^2", "3 km/h")."""
    text = _ARTICLE.sub("", text)
    kept: list[str] = []
    pos = 0
    for match in _WORD.finditer(text):
        if match.group().lower() in _KEEP_WORDS:
            continue
        kept.append(text[pos : match.start()])
        if _MATH_BEFORE.search(kept[-1]):
            return "".join(kept)  # a unit after the number: drop it and everything after it
        pos = match.end()
    kept.append(text[pos:])
    return "".join(kept)


# ---------------------------------------------------------------------------------------------------------
# comparison


def _exactly_equal(a: Node, b: Node) -> bool | None:
    """True/False when both are rational numbers (or tuples of them); None when sympy must decide."""
    if a[0] == "tuple" or b[0] == "tuple":
        if not (a[0] == b[0] == "tuple" and a[1] == b[1] and a[3] == b[3] and len(a[2]) == len(b[2])):
            return False
        results = [_exactly_equal(x, y) for x, y in zip(a[2], b[2], strict=True)]
        if False in results:
            return False
        return None if None in results else True
    exact_a, exact_b = _exact_or_none(a), _exact_or_none(b)  # Rejected (over a bound) propagates
    if exact_a is None or exact_b is None:
        return None
    (x, x_inexact), (y, y_inexact) = exact_a, exact_b
    if x == y:
        return True
    if not (x_inexact or y_inexact):
        return False
    return abs(x - y) <= _REL_TOL * max(abs(x), abs(y))


def _exact_or_none(node: Node) -> tuple[Fraction, bool] | None:
    try:
        return exact_value(node)
    except NotRational:
        return None


_REL_TOL = Fraction(REL_TOL_INEXACT)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _exact_compare(a_text: str, b_text: str) -> bool | None:
    """The exact stage on normalised text; None when the symbolic stage must decide."""
    try:
        a, b = parse(a_text), parse(b_text)
    except Rejected:
        return False
    undecided = False
    for x, y in percent_alternatives(a, b):
        try:
            result = _exactly_equal(x, y)
        except Rejected:
            continue
        if result:
            return True
        undecided = undecided or result is None
    return None if undecided else False


class _SymbolicCache:
    """LRU of decided symbolic comparisons; a timeout is not a decision and is never stored."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bool | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple[str, str], value: bool) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_symbolic_cache = _SymbolicCache(_CACHE_SIZE)


def is_equivalent(pred: str, gold: str, timeout: float = 2.0) -> bool:
    """Whether answer `pred` equals answer `gold`; False when either cannot be read or time runs out.

    Both sides are normalised first: `\\boxed{}`, `$`/`\\$`, `\\left`/`\\right`, `\\text{}` and `\\mathrm{}`,
    thousands separators, currency, degrees, leading words and trailing units ("12 apples", "5 cm") go;
    `x = 5` keeps its right side; "2.5 million" scales. Then rational values compare exactly, with a
    relative tolerance of 1e-9 only when a decimal literal takes part. A lone percent sign reads both as
    /100 and as written ("50%" equals 0.5 and 50). Anything irrational or symbolic goes to sympy, numbers
    to 60 digits and expressions with symbols at random rational points. Answers with no math left
    ("Monday") compare as lower-case text.

    Returns within `timeout` seconds from any thread (no signals). Raises ValueError only for a
    non-positive timeout, never because of the answers' content.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    deadline = time.monotonic() + timeout
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    if len(pred) > MAX_INPUT_CHARS or len(gold) > MAX_INPUT_CHARS:
        return False
    a, b = _normalise(pred), _normalise(gold)
    if not a or not b:  # no math left: a word answer ("Monday", "yes") must match as text
        text_a = _textual(pred)
        return bool(text_a) and text_a == _textual(gold)
    if a == b:
        return True
    exact = _exact_compare(a, b)
    if exact is not None:
        return exact
    cached = _symbolic_cache.get((a, b))
    if cached is not None:
        return cached
    result = WORKER.compare(a, b, deadline)
    if result is None:
        logger.debug("symbolic comparison of %r and %r timed out after %.2fs", a, b, timeout)
        return False
    _symbolic_cache.put((a, b), result)
    return result


def clear_cache() -> None:
    """Forget every cached normalisation and comparison (benchmarks time cold calls with it)."""
    _normalise.cache_clear()
    _textual.cache_clear()
    _exact_compare.cache_clear()
    _symbolic_cache.clear()


# ---------------------------------------------------------------------------------------------------------
# the Verifier


class MathVerifier:
    """The Verifier for `kind == "math"` tasks: extract the final answer, compare it with `task.answer`.

    With `check_annotations` (the default) a solution must also have every `<<a*b=c>>` calculator
    annotation and every compact plain `a+b=c` equation (the place-value work) right
    (verify/annotations.py: `arithmetic_errors`): a right answer reached through false arithmetic is wrong.
    """

    def __init__(self, timeout: float = 2.0, *, check_annotations: bool = True) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = timeout
        self.check_annotations = check_annotations

    def check_prefix(self, task: Task, text: str) -> Verdict | None:
        """A failing verdict when an unfinished solution is already wrong (a false annotation), else None."""
        if not self.check_annotations:
            return None
        errors = arithmetic_errors(text)
        if not errors:
            return None
        return Verdict(correct=False, score=0.0, predicted=None, detail=f"false step: {errors[0].reason}")

    def check(self, task: Task, completion: str) -> Verdict:
        """Score 1.0 when the completion's final answer equals the gold answer, else 0.0. Never raises."""
        try:
            predicted = extract_answer(completion)
            if predicted is None:
                return Verdict(correct=False, score=0.0, predicted=None, detail="no final answer found")
            correct = is_equivalent(predicted, task.answer, self.timeout)
            errors = arithmetic_errors(completion) if correct and self.check_annotations else []
        except Exception as err:  # a verifier bug must cost one sample, not the whole search
            logger.warning("math verifier failed on task %s: %s: %s", task.id, type(err).__name__, err)
            return Verdict(correct=False, score=0.0, predicted=None, detail=f"verifier error: {err!r}")
        if errors:
            return Verdict(
                correct=False,
                score=0.0,
                predicted=predicted,
                detail=f"{predicted!r} equals gold but a step is false: {errors[0].reason}",
            )
        relation = "equals" if correct else "differs from"
        return Verdict(
            correct=correct,
            score=1.0 if correct else 0.0,
            predicted=predicted,
            detail=f"{predicted!r} {relation} gold {task.answer!r}",
        )
