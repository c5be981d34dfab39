"""Built-in GSM8K-style word problems: chains of k exact integer steps, written in GSM8K's solution format.

A k-step problem is a chain of k arithmetic operations. Step 1 combines two quantities stated in the
question; every later step combines the previous result with one new stated quantity. The question states
the quantities in the order the solution uses them, and the solution has one line per step,

    "He gives away 5, so 12-5=<<12-5=7>>7 apples."

then `#### N`, as in GSM8K (Cobbe et al., 2021, https://arxiv.org/abs/2110.14168). The format is kept short
and regular on purpose: the embedded default SFT-trains a ~1M-parameter Llama on these problems, and such a
model learns to copy a number and do one operation per line, not to parse free prose.

Every stated quantity is at most 100, every result an integer in 1..9,999, and every generated solution is
re-checked by recomputing its annotations with exact arithmetic (`solution_error`); a failure is a bug in a
template and raises. Splits are disjoint by construction: a candidate question belongs to the split chosen by
a stable hash of its text, so no question text can be generated for two splits, whatever the seeds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple, TypeVar

from selfimprove.tasks.splits import SPLITS, check_generator_request, hash_split
from selfimprove.tasks.task import Task

__all__ = [
    "GENERATOR_VERSION",
    "MAX_STEPS",
    "MIN_STEPS",
    "SPLITS",
    "check_solution",
    "evaluate_expression",
    "generate_tasks",
    "solution_error",
    "split_of",
]

# Bumped whenever the text generated for a given (split, seed, steps) changes, so caches built from
# generated data (e.g. the tiny model's SFT warm start) can key on it.
GENERATOR_VERSION = 1
MIN_STEPS = 1
MAX_STEPS = 8
_T = TypeVar("_T")

_MAX_OPERAND = 100  # every quantity stated in a question
_MAX_RESULT = 9_999  # every intermediate result; keeps numbers within 4 digits for a tiny model
_MAX_FACTOR = 9  # a multiplier applied to a previous result is a single digit
_MAX_PRODUCT = 1_000  # multiplying stops here: digit-by-digit products stay learnable for a tiny model
_PERCENTS = ((50, 2), (25, 4), (20, 5), (10, 10))  # keeping p% is dividing by d: one operation per line

# --- vocabulary ----------------------------------------------------------------------------------------

_MALE = ("Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Omar", "Ravi", "Liam", "Noah", "Ivan", "Carlos", "Kenji")
_MALE += ("Felix", "Hugo", "Mark", "Paul", "Adam", "Luis", "Ali", "Dev", "Finn", "Theo", "Jamal")
_FEMALE = ("Anna", "Mia", "Emma", "Lily", "Zoe", "Sara", "Nina", "Ella", "Maya", "Rosa", "Aisha", "Priya")
_FEMALE += ("Yuki", "Grace", "Julia", "Chloe", "Amy", "Lena", "Ines", "Hana", "Ruth", "Tara", "Vera", "Kim")


@dataclass(frozen=True)
class _Person:
    name: str
    he: str  # subject pronoun, capitalised for sentence starts
    him: str
    himself: str


_PEOPLE = tuple(_Person(n, "He", "him", "himself") for n in _MALE) + tuple(
    _Person(n, "She", "her", "herself") for n in _FEMALE
)


@dataclass(frozen=True)
class _Thing:
    singular: str
    plural: str
    edible: bool


_OBJECTS = tuple(
    _Thing(s, p, e)
    for s, p, e in (
        ("apple", "apples", True),
        ("orange", "oranges", True),
        ("pear", "pears", True),
        ("peach", "peaches", True),
        ("lemon", "lemons", True),
        ("plum", "plums", True),
        ("banana", "bananas", True),
        ("cookie", "cookies", True),
        ("cupcake", "cupcakes", True),
        ("muffin", "muffins", True),
        ("egg", "eggs", True),
        ("candy", "candies", True),
        ("cherry", "cherries", True),
        ("tomato", "tomatoes", True),
        ("potato", "potatoes", True),
        ("carrot", "carrots", True),
        ("marble", "marbles", False),
        ("sticker", "stickers", False),
        ("pencil", "pencils", False),
        ("crayon", "crayons", False),
        ("card", "cards", False),
        ("stamp", "stamps", False),
        ("shell", "shells", False),
        ("button", "buttons", False),
        ("bead", "beads", False),
        ("ball", "balls", False),
        ("balloon", "balloons", False),
        ("book", "books", False),
        ("toy car", "toy cars", False),
        ("flower", "flowers", False),
    )
)
_CONTAINERS = tuple(
    _Thing(s, p, False)
    for s, p in (("box", "boxes"), ("bag", "bags"), ("basket", "baskets"), ("jar", "jars"), ("pack", "packs"))
)
_PURCHASES = (
    "a book",
    "lunch",
    "a ticket",
    "a toy",
    "a gift",
    "snacks",
    "a hat",
    "a game",
    "a plant",
    "paint",
)
_DOLLARS = _Thing("dollar", "dollars", False)

# --- one step ------------------------------------------------------------------------------------------


class _Step(NamedTuple):  # a NamedTuple: built ~70k times a second, where a frozen dataclass is slow
    sentence: str  # what the question says
    clause: str  # what the solution line says before ", so"
    a: int
    op: str
    b: int
    stated: str  # how the new quantity b appears in the question ("5", "$5", "25%")
    result: int
    thing: _Thing  # what the result counts


class _Story:
    """The running context of one problem: who acts, what is counted, and how the subject is named."""

    __slots__ = ("other", "person", "rng")

    def __init__(self, rng: random.Random, person: _Person, other: _Person) -> None:
        self.rng = rng
        self.person = person
        self.other = other

    def subject(self) -> str:
        return self.person.name if self.rng.random() < 0.4 else self.person.he


# random.choice / randint cost ~0.5 us per call through their general code paths; these draw from
# rng.random() directly (still deterministic per seed); generation got about 20% faster.
def _pick(rng: random.Random, seq: Sequence[_T]) -> _T:
    return seq[int(rng.random() * len(seq))]


def _randint(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def _divisors(v: int, low: int, high: int) -> list[int]:
    return [d for d in range(low, min(high, v) + 1) if v % d == 0]


# Each op maps (story, current value, what it counts) to a step, or None where it cannot apply
# (it would leave the integers 1..9,999 or divide inexactly).
_Op = Callable[[_Story, int, _Thing], "_Step | None"]


def _items_add(s: _Story, v: int, t: _Thing) -> _Step | None:
    b = _randint(s.rng, 2, 50)
    if v + b > _MAX_RESULT:
        return None
    he = s.person.he
    if s.rng.random() < 0.25:
        sentence, clause = (
            f"{s.other.name} gives {s.person.him} {b} more.",
            f"{he} gets {b} from {s.other.name}",
        )
    else:
        verb = _pick(s.rng, ("buys", "finds", "gets", "picks up"))
        sentence, clause = f"{s.subject()} {verb} {b} more {t.plural}.", f"{he} {verb} {b} more"
    return _Step(sentence, clause, v, "+", b, str(b), v + b, t)


def _items_sub(s: _Story, v: int, t: _Thing) -> _Step | None:
    if v < 2:
        return None
    b = _randint(s.rng, 1, min(_MAX_OPERAND, v - 1))
    he = s.person.he
    if s.rng.random() < 0.25:
        sentence, clause = f"{s.subject()} gives {b} to {s.other.name}.", f"{he} gives {b} to {s.other.name}"
    else:
        verbs = ("gives away", "sells", "loses", "eats") if t.edible else ("gives away", "sells", "loses")
        verb = _pick(s.rng, verbs)
        sentence, clause = f"{s.subject()} {verb} {b} of them.", f"{he} {verb} {b}"
    return _Step(sentence, clause, v, "-", b, str(b), v - b, t)


def _items_mul(s: _Story, v: int, t: _Thing) -> _Step | None:
    high = min(_MAX_FACTOR, _MAX_PRODUCT // v)
    if high < 2:
        return None
    b = _randint(s.rng, 2, high)
    when = _pick(s.rng, ("A month later", "A week later", "By the end of the year"))
    sentence = f"{when}, {s.person.he.lower()} has {b} times as many {t.plural}."
    return _Step(sentence, f"{s.person.he} has {b} times as many", v, "*", b, str(b), v * b, t)


def _items_sell(s: _Story, v: int, t: _Thing) -> _Step | None:
    high = min(20, _MAX_PRODUCT // v)
    if high < 2:
        return None
    b = _randint(s.rng, 2, high)
    sentence = f"{s.subject()} sells each {t.singular} for ${b}."
    return _Step(sentence, f"{s.person.he} sells them at {b} each", v, "*", b, f"${b}", v * b, _DOLLARS)


def _items_pack(s: _Story, v: int, t: _Thing) -> _Step | None:
    sizes = _divisors(v, 2, 12)
    if not sizes or t in _CONTAINERS:
        return None
    b = _pick(s.rng, sizes)
    box = _pick(s.rng, _CONTAINERS)
    sentence = f"{s.subject()} packs them into {box.plural} of {b}."
    return _Step(sentence, f"{s.person.he} packs them in {box.plural} of {b}", v, "/", b, str(b), v // b, box)


def _items_keep(s: _Story, v: int, t: _Thing) -> _Step | None:
    if s.rng.random() < 0.5:
        options = [(p, d) for p, d in _PERCENTS if v % d == 0 and v > d]
        if not options:
            return None
        p, d = _pick(s.rng, options)
        sentence = f"{s.subject()} keeps {p}% of them."
        return _Step(sentence, f"{s.person.he} keeps {p}%", v, "/", d, f"{p}%", v // d, t)
    piles = _divisors(v, 2, 10)
    if not piles or v == piles[-1]:
        return None
    b = _pick(s.rng, [d for d in piles if d < v])
    sentence = f"{s.subject()} splits them into {b} equal piles and keeps one pile."
    return _Step(sentence, f"{s.person.he} keeps 1 of {b} piles", v, "/", b, str(b), v // b, t)


def _money_add(s: _Story, v: int, t: _Thing) -> _Step | None:
    b = _randint(s.rng, 2, _MAX_OPERAND)
    if v + b > _MAX_RESULT:
        return None
    he = s.person.he
    if s.rng.random() < 0.3:
        sentence, clause = f"{s.other.name} gives {s.person.him} ${b}.", f"{he} gets {b} from {s.other.name}"
    else:
        verb = _pick(s.rng, ("earns", "finds", "wins"))
        more = " more" if verb == "earns" else ""
        sentence, clause = f"{s.subject()} {verb} ${b}{more}.", f"{he} {verb} {b}{more}"
    return _Step(sentence, clause, v, "+", b, f"${b}", v + b, t)


def _money_sub(s: _Story, v: int, t: _Thing) -> _Step | None:
    if v < 2:
        return None
    b = _randint(s.rng, 1, min(_MAX_OPERAND, v - 1))
    he = s.person.he
    if s.rng.random() < 0.25:
        sentence, clause = f"{s.subject()} gives ${b} to {s.other.name}.", f"{he} gives {b} to {s.other.name}"
    else:
        verb, item = _pick(s.rng, ("spends", "pays")), _pick(s.rng, _PURCHASES)
        sentence = f"{s.subject()} {verb} ${b} {'on' if verb == 'spends' else 'for'} {item}."
        clause = f"{he} {verb} {b}"
    return _Step(sentence, clause, v, "-", b, f"${b}", v - b, t)


def _money_mul(s: _Story, v: int, t: _Thing) -> _Step | None:
    high = min(_MAX_FACTOR, _MAX_PRODUCT // v)
    if high < 2:
        return None
    b = _randint(s.rng, 2, high)
    verb, unit = _pick(s.rng, (("earns", "day"), ("saves", "week"), ("makes", "month")))
    sentence = f"{s.subject()} {verb} that much each {unit} for {b} {unit}s."
    return _Step(sentence, f"{s.person.he} {verb} it for {b} {unit}s", v, "*", b, str(b), v * b, t)


def _money_buy(s: _Story, v: int, t: _Thing) -> _Step | None:
    prices = _divisors(v, 2, 25)
    if not prices:
        return None
    b = _pick(s.rng, prices)
    thing = _pick(s.rng, _OBJECTS)
    sentence = f"{s.subject()} spends all of it on {thing.plural} at ${b} each."
    clause = f"{s.person.he} buys {thing.plural} at {b} each"
    return _Step(sentence, clause, v, "/", b, f"${b}", v // b, thing)


def _money_keep(s: _Story, v: int, t: _Thing) -> _Step | None:
    if s.rng.random() < 0.5:
        options = [(p, d) for p, d in _PERCENTS if v % d == 0 and v > d]
        if not options:
            return None
        p, d = _pick(s.rng, options)
        sentence = f"{s.subject()} keeps {p}% of the money and donates the rest."
        return _Step(sentence, f"{s.person.he} keeps {p}%", v, "/", d, f"{p}%", v // d, t)
    ways = [d for d in _divisors(v, 2, 10) if d < v]
    if not ways:
        return None
    b = _pick(s.rng, ways)
    sentence = f"{s.subject()} splits the money equally among {b} people, {s.person.himself} included."
    return _Step(sentence, f"{s.person.he} splits it {b} ways", v, "/", b, str(b), v // b, t)


_ITEM_OPS: tuple[_Op, ...] = (_items_add, _items_sub, _items_mul, _items_sell, _items_pack, _items_keep)
_MONEY_OPS: tuple[_Op, ...] = (_money_add, _money_sub, _money_mul, _money_buy, _money_keep)
# Ops repeated by weight, for a uniform _pick: + and - dominate GSM8K; * and / keep each kind present.
_ITEM_DRAW = _ITEM_OPS[:2] * 3 + _ITEM_OPS[2:]
_MONEY_DRAW = _MONEY_OPS[:2] * 3 + _MONEY_OPS[2:]


def _next_step(s: _Story, v: int, t: _Thing) -> _Step:
    ops, draw = (_MONEY_OPS, _MONEY_DRAW) if t is _DOLLARS else (_ITEM_OPS, _ITEM_DRAW)
    for _ in range(20):
        step = _pick(s.rng, draw)(s, v, t)
        if step is not None:
            return step
    # Unlucky draws only: "-" always applies to v >= 2, and "+" to v == 1.
    step = (ops[1] if v >= 2 else ops[0])(s, v, t)
    if step is None:
        raise RuntimeError(f"arith generator bug: no operation applies to {v} {t.plural}")
    return step


# --- first step: two stated quantities -----------------------------------------------------------------
# A "start" opens the problem. `has_items` / `has_money` state an amount, and the first op acts on it;
# the others state a rate, a count or a sum that the first line works out.


def _start_has_items(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    t, a = _pick(s.rng, _OBJECTS), _randint(s.rng, 5, _MAX_OPERAND)
    verb = _pick(s.rng, ("has", "buys", "collects"))
    return f"{s.person.name} {verb} {a} {t.plural}.", a, t, None


def _start_has_money(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    a = _randint(s.rng, 5, _MAX_OPERAND)
    opening = _pick(s.rng, ("has", "starts with", "saved"))
    return f"{s.person.name} {opening} ${a}.", a, _DOLLARS, None


def _start_boxes(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    t, box = _pick(s.rng, _OBJECTS), _pick(s.rng, _CONTAINERS)
    a, b = _randint(s.rng, 2, 12), _randint(s.rng, 2, 20)
    verb = _pick(s.rng, ("has", "buys"))
    sentence = (
        f"{s.person.name} {verb} {a} {box.plural} of {t.plural} with {b} {t.plural} in each {box.singular}."
    )
    clause = f"{a} {box.plural} of {b}"
    return "", 0, t, _Step(sentence, clause, a, "*", b, str(b), a * b, t)


def _start_wage(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    a, b = _randint(s.rng, 2, 12), _randint(s.rng, 5, 30)
    sentence = f"{s.person.name} works {a} hours and earns ${b} an hour."
    clause = f"{s.person.he} works {a} hours at {b} an hour"
    return "", 0, _DOLLARS, _Step(sentence, clause, a, "*", b, f"${b}", a * b, _DOLLARS)


def _start_savings(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    a, b = _randint(s.rng, 2, 40), _randint(s.rng, 2, 12)
    sentence = f"{s.person.name} saves ${a} a week for {b} weeks."
    clause = f"{s.person.he} saves {a} a week for {b} weeks"
    return "", 0, _DOLLARS, _Step(sentence, clause, a, "*", b, str(b), a * b, _DOLLARS)


def _start_sale(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    t, a, b = _pick(s.rng, _OBJECTS), _randint(s.rng, 2, 40), _randint(s.rng, 2, 15)
    sentence = f"{s.person.name} sells {a} {t.plural} for ${b} each."
    clause = f"{s.person.he} sells {a} at {b} each"
    return "", 0, _DOLLARS, _Step(sentence, clause, a, "*", b, f"${b}", a * b, _DOLLARS)


def _start_two_days(s: _Story) -> tuple[str, int, _Thing, _Step | None]:
    t, a, b = _pick(s.rng, _OBJECTS), _randint(s.rng, 2, _MAX_OPERAND), _randint(s.rng, 2, _MAX_OPERAND)
    first, second = _pick(s.rng, (("on Monday", "on Tuesday"), ("in the morning", "in the afternoon")))
    verb = _pick(s.rng, ("collects", "gets", "buys"))
    sentence = f"{s.person.name} {verb} {a} {t.plural} {first} and {b} {second}."
    clause = f"{s.person.he} {verb} {a} and {b}"
    return "", 0, t, _Step(sentence, clause, a, "+", b, str(b), a + b, t)


_STARTS = {
    "has_items": _start_has_items,
    "has_money": _start_has_money,
    "boxes": _start_boxes,
    "wage": _start_wage,
    "savings": _start_savings,
    "sale": _start_sale,
    "two_days": _start_two_days,
}
_START_DRAW = (
    ("has_items",) * 4 + ("has_money",) * 3 + ("boxes",) * 2 + ("wage", "savings", "sale", "two_days")
)

_ITEM_QUESTIONS = (
    "How many {what} does {name} have now?",
    "How many {what} does {he} have in the end?",
    "How many {what} does {name} end up with?",
)
_MONEY_QUESTIONS = (
    "How much money does {name} have now?",
    "How many dollars does {he} have in the end?",
    "How much money does {name} end up with?",
)


def _line(step: _Step) -> str:
    expr = f"{step.a}{step.op}{step.b}"
    unit = step.thing.singular if step.result == 1 else step.thing.plural
    return f"{step.clause}, so {expr}=<<{expr}={step.result}>>{step.result} {unit}."


def _compose(rng: random.Random, k: int) -> tuple[str, str, str, list[_Step]]:
    """One candidate k-step problem: (question, solution, start name, steps)."""
    person = _pick(rng, _PEOPLE)
    other = _pick(rng, _PEOPLE)
    while other.name == person.name:
        other = _pick(rng, _PEOPLE)
    story = _Story(rng, person, other)
    start = _pick(rng, _START_DRAW)
    opening, value, thing, first = _STARTS[start](story)
    sentences = [opening] if opening else []
    steps: list[_Step] = []
    if first is not None:
        steps.append(first)
        sentences.append(first.sentence)
        value, thing = first.result, first.thing
    while len(steps) < k:
        step = _next_step(story, value, thing)
        steps.append(step)
        sentences.append(step.sentence)
        value, thing = step.result, step.thing
    templates = _MONEY_QUESTIONS if thing is _DOLLARS else _ITEM_QUESTIONS
    ask = _pick(rng, templates).format(what=thing.plural, name=person.name, he=person.he.lower())
    question = " ".join([*sentences, ask])
    solution = "\n".join([*(_line(step) for step in steps), f"#### {value}"])
    return question, solution, start, steps


# --- checking --------------------------------------------------------------------------------------------

_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([-+*/()]))")
_BINARY = re.compile(r"(\d{1,9})([-+*/])(\d{1,9})")  # the generator's own shape: a fast exact path
_BINARY_ANNOTATION = re.compile(r"(\d{1,9})([-+*/])(\d{1,9})=(\d{1,9})")
_STATED = re.compile(r"\$?\d+%?")  # a quantity as a question states it: 5, $5 or 25%
_MAX_EXPR_CHARS = 200  # GSM8K's longest annotation is far shorter; bounds the work on hostile text
_MAX_NUMBER_DIGITS = 30

_Number = int | Fraction  # int while exact division keeps it integral, which is much faster than Fraction


def _divide(a: _Number, b: _Number, expr: str) -> _Number:
    if b == 0:
        raise ValueError(f"division by zero in {expr!r}")
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return Fraction(a) / b


def _apply(a: _Number, op: str, b: _Number, expr: str) -> _Number:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return _divide(a, b, expr)


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    expr = expr.replace(",", "").replace("$", "").rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(
                f"unexpected character {expr[pos : pos + 1]!r} in {expr!r}; allowed: digits . + - * / ( )"
            )
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def _evaluate(expr: str) -> _Number:
    if expr.isascii() and expr.isdigit() and len(expr) <= _MAX_NUMBER_DIGITS:
        return int(expr)
    m = _BINARY.fullmatch(expr)
    if m is not None:
        return _apply(int(m.group(1)), m.group(2), int(m.group(3)), expr)
    if len(expr) > _MAX_EXPR_CHARS:
        raise ValueError(f"expression of {len(expr)} characters; at most {_MAX_EXPR_CHARS} allowed")
    tokens = _tokens(expr)
    if not tokens:
        raise ValueError("empty expression")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    # Recursive descent over sum := product (("+"|"-") product)*, product := atom (("*"|"/") atom)*,
    # atom := number | "-" atom | "(" sum ")". Depth is bounded by _MAX_EXPR_CHARS.
    def atom() -> _Number:
        tok = peek()
        if tok is None:
            raise ValueError(f"expression {expr!r} ends early")
        take()
        if tok == "-":
            return -atom()
        if tok == "(":
            value = sum_()
            if peek() != ")":
                raise ValueError(f"unbalanced parenthesis in {expr!r}")
            take()
            return value
        if tok in "+*/)":
            raise ValueError(f"unexpected {tok!r} in {expr!r}")
        if len(tok) > _MAX_NUMBER_DIGITS:
            raise ValueError(f"number with {len(tok)} characters in {expr!r}; at most {_MAX_NUMBER_DIGITS}")
        return int(tok) if tok.isdigit() else Fraction(tok)

    def product() -> _Number:
        value = atom()
        while peek() in ("*", "/"):
            op = take()
            value = _apply(value, op, atom(), expr)
        return value

    def sum_() -> _Number:
        value = product()
        while peek() in ("+", "-"):
            op = take()
            value = _apply(value, op, product(), expr)
        return value

    result = sum_()
    if pos != len(tokens):
        raise ValueError(f"unexpected {tokens[pos]!r} in {expr!r}")
    return result


def evaluate_expression(expr: str) -> Fraction:
    """Exact value of an annotation expression: numbers, + - * /, parentheses and unary minus; no eval.

    Thousands commas and `$` are ignored. Raises ValueError on anything else, on division by zero and on
    input over 200 characters or numbers over 30 digits (so hostile text costs microseconds).
    """
    return Fraction(_evaluate(expr))


def solution_error(solution: str) -> str | None:
    """Why a GSM8K-format solution fails to check, or None when it checks.

    Every `<<expr=value>>` must recompute exactly, and the final `#### N` line must equal the last result.
    """
    last: _Number | None = None
    for m in _ANNOTATION.finditer(solution):
        fast = _BINARY_ANNOTATION.fullmatch(m.group(1))
        if fast is not None and fast.group(2) != "/":
            a, op, b, value = fast.groups()
            last = _apply(int(a), op, int(b), m.group(1))
            if last != int(value):
                return f"annotation <<{m.group(1)}>>: {a}{op}{b} is {last}, not {value}"
            continue
        expr, sep, value = m.group(1).rpartition("=")
        if not sep:
            return f"annotation <<{m.group(1)}>> has no '='"
        try:
            computed, claimed = _evaluate(expr), _evaluate(value)
        except ValueError as err:
            return f"annotation <<{m.group(1)}>>: {err}"
        if computed != claimed:
            return f"annotation <<{m.group(1)}>>: {expr} is {computed}, not {value}"
        last = computed
    if last is None:
        return "no <<expr=value>> annotation"
    last_line = solution.rstrip().rsplit("\n", 1)[-1].strip()
    if not last_line.startswith("####"):
        return f"last line {last_line!r} is not '#### N'"
    try:
        final = _evaluate(last_line[4:].strip())
    except ValueError as err:
        return f"final line {last_line!r}: {err}"
    if final != last:
        return f"final answer {last_line[4:].strip()} differs from the last result {last}"
    return None


def check_solution(solution: str) -> bool:
    """True when every annotation recomputes exactly and `#### N` equals the last result."""
    return solution_error(solution) is None


def _validate(question: str, solution: str, steps: list[_Step], k: int) -> None:
    """Raise RuntimeError when a template broke an invariant of the format (a bug, never bad luck)."""
    problem = solution_error(solution)
    lines = solution.split("\n")
    stated = set(_STATED.findall(question))
    if problem is None and len(steps) != k:
        problem = f"{len(steps)} steps, expected {k}"
    if problem is None and len(lines) != k + 1:
        problem = f"{len(lines)} lines, expected {k} step lines and '#### N'"
    for i, step in enumerate(steps):
        if problem is not None:
            break
        if lines[i].count("<<") != 1 or f">>{step.result} " not in lines[i]:
            problem = f"line {i + 1} {lines[i]!r} is not one annotation followed by its result"
        elif not (1 <= step.result <= _MAX_RESULT) or _apply(step.a, step.op, step.b, "") != step.result:
            problem = f"step {i + 1} result {step.result} is wrong or outside the integers 1..{_MAX_RESULT}"
        elif i > 0 and step.a != steps[i - 1].result:
            problem = f"step {i + 1} does not use the previous result {steps[i - 1].result}"
        elif i == 0 and not {str(step.a), f"${step.a}"} & stated:
            problem = f"step 1 uses {step.a}, not stated in the question"
        elif step.stated not in stated or int(step.stated.strip("$%")) > _MAX_OPERAND:
            problem = (
                f"step {i + 1} uses {step.stated!r}, not stated in the question (or over {_MAX_OPERAND})"
            )
    if problem is not None:
        raise RuntimeError(f"arith generator bug: {problem}\nquestion: {question}\nsolution:\n{solution}")


# --- splits and the public generator -------------------------------------------------------------------


def split_of(question: str) -> str:
    """The split a question text belongs to (selfimprove.tasks.splits.hash_split)."""
    return hash_split(question)


def generate_tasks(
    split: str,
    n: int,
    *,
    seed: int,
    min_steps: int = 1,
    max_steps: int = 4,
    steps: int | None = None,
) -> list[Task]:
    """`n` distinct problems of `split` ("train", "val" or "test"), each of `steps` steps, or of a step
    count drawn uniformly from min_steps..max_steps per problem.

    Deterministic in (split, seed, min_steps, max_steps, steps); a call with a smaller n returns a prefix.
    """
    check_generator_request(
        split, n, min_steps=min_steps, max_steps=max_steps, steps=steps, lowest=MIN_STEPS, highest=MAX_STEPS
    )
    # A string seed hashes with SHA-512 inside random.Random, so streams are stable across processes.
    rng = random.Random(f"selfimprove.arith/{split}/{seed}/{min_steps}/{max_steps}/{steps}")
    seen: set[str] = set()
    tasks: list[Task] = []
    attempts, max_attempts = 0, 100 * n + 1000
    while len(tasks) < n:
        attempts += 1
        if attempts > max_attempts:  # only reachable if the templates could not make n distinct texts
            raise RuntimeError(
                f"made {len(tasks)} distinct {split} problems in {max_attempts} attempts; asked {n}"
            )
        k = steps if steps is not None else _randint(rng, min_steps, max_steps)
        question, solution, start, chain = _compose(rng, k)
        if question in seen or split_of(question) != split:
            continue
        _validate(question, solution, chain, k)
        seen.add(question)
        tasks.append(
            Task(
                id=f"arith-{split}-s{k}-{len(tasks):06d}",
                question=question,
                answer=str(chain[-1].result),
                solution=solution,
                metadata={"steps": k, "split": split, "template": start},
            )
        )
    return tasks
