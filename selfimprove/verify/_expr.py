"""A safe, bounded grammar for math answers: tokenizer, recursive-descent parser, exact evaluator.

sympy's own parsers (`sympify`, `parse_expr`, `parse_latex`) run Python `eval` on their input, so a model
answer such as `__import__('os').system(...)` would execute. This module never evaluates text: a whitelisted
tokenizer feeds a small recursive-descent parser that builds a tuple AST, and two walkers turn the AST into
either an exact `Fraction` (the fast path, no sympy) or a sympy object built from constructors
(`Integer`, `Rational`, `Add`, `Mul`, `Pow`, `sqrt`, `pi`, ...).

Every cost is bounded by construction, so no timer is needed on this path: input length, nesting depth,
digits per literal, scientific-notation exponents, factorial arguments and the bit size of every
intermediate integer are all capped, and crossing a cap raises `Rejected` (the caller answers "not equal").

Grammar (plain text and the LaTeX subset that answers use), loosest binding first:
    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/' | \\cdot | \\times | \\div | <implicit>) unary)*
    unary   := ('-' | '+') unary | power
    power   := postfix ('^' unary)?                      right-associative: 2^3^2 = 2^9
    postfix := primary ('!' | '%')*
    primary := number | symbol | pi | infinity | '(' list ')' | '[' list ']' | '{' expr '}'
             | \\frac{expr}{expr} | \\sqrt[expr]{expr} | function primary
A list with commas is a tuple; `2\\frac{1}{2}` (an integer followed directly by a numeric \\frac) is the
mixed number 2 1/2, as grade-school answers write it.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

MAX_CHARS = 2000  # longest expression the parser accepts
MAX_DEPTH = 60  # nesting of brackets, signs and powers
MAX_LITERAL_DIGITS = 1000  # digits in one number literal (Python refuses int() past 4300 anyway)
MAX_SCI_EXPONENT = 1000  # |n| in 1.5e<n>
MAX_FACTORIAL = 1000  # 1000! has 2,568 digits
MAX_BITS = 100_000  # about 30,000 decimal digits: the largest numerator/denominator ever built
MAX_SYMBOLIC_EXPONENT = 10_000  # |n| in base^n on the sympy side, where expansion could explode

# AST nodes are tuples whose first item names the kind:
#   ("num", Fraction, inexact)   inexact: the literal had a decimal point or an exponent
#   ("sym", name) ("pi",) ("inf",)
#   ("neg", a) ("add", a, b) ("sub", a, b) ("mul", a, b) ("div", a, b) ("pow", a, b)
#   ("fact", a) ("pct", a) ("sqrt", a, index or None) ("fn", name, a) ("tuple", open, items, close)
Node = tuple[Any, ...]

FUNCTIONS = frozenset({"sin", "cos", "tan", "ln", "log", "exp"})
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<cmd>\\[A-Za-z]+)
  | (?P<name>[A-Za-z]+(?:_(?:\{[A-Za-z0-9]+\}|[A-Za-z0-9]))?)
  | (?P<op>\*\*|[-+*/^()\[\]{},!%])
    """,
    re.VERBOSE,
)
_LATEX_OPERATORS = {"\\cdot": "*", "\\times": "*", "\\div": "/"}
_LATEX_ATOMS = {"\\pi", "\\infty"}
_LATEX_FRACS = {"\\frac", "\\dfrac", "\\tfrac", "\\cfrac"}
_LATEX_FUNCTIONS = {"\\" + name for name in FUNCTIONS}
_PRIMARY_START = {"num", "name", "cmd"}


class Rejected(ValueError):
    """The text is outside the grammar or over a bound: it cannot be compared, so it is not equal."""


class NotRational(Exception):
    """The exact evaluator met something that is not a rational number (pi, a symbol, an irrational root)."""


# ---------------------------------------------------------------------------------------------------------
# tokenizer


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split `text` into (kind, value) tokens; anything outside the whitelist raises Rejected."""
    if len(text) > MAX_CHARS:
        raise Rejected(f"expression of {len(text)} characters, the limit is {MAX_CHARS}")
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise Rejected(f"character {text[pos]!r} at {pos} is not part of the math grammar")
        kind = match.lastgroup
        value = match.group()
        pos = match.end()
        if kind == "ws":
            continue
        if kind == "cmd":
            if value in _LATEX_OPERATORS:
                kind, value = "op", _LATEX_OPERATORS[value]
            elif value not in _LATEX_ATOMS | _LATEX_FRACS | _LATEX_FUNCTIONS | {"\\sqrt"}:
                raise Rejected(f"LaTeX command {value} is not supported")
        if kind == "op" and value == "**":
            value = "^"
        assert kind is not None
        tokens.append((kind, value))
    return tokens


def _parse_number(text: str) -> Fraction:
    mantissa, _, exponent = text.lower().partition("e")
    if len(mantissa) > MAX_LITERAL_DIGITS:
        raise Rejected(f"number literal of {len(mantissa)} digits, the limit is {MAX_LITERAL_DIGITS}")
    value = Fraction(mantissa if mantissa != "." else "0")
    if exponent:
        power = int(exponent)
        if abs(power) > MAX_SCI_EXPONENT:
            raise Rejected(f"scientific exponent {power}, the limit is ±{MAX_SCI_EXPONENT}")
        value *= Fraction(10) ** power
    return value


# ---------------------------------------------------------------------------------------------------------
# parser


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise Rejected("expression ends too early")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1] != value:
            raise Rejected(f"expected {value!r}, got {token[1]!r}")

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] == value

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Rejected(f"nesting deeper than {MAX_DEPTH}")

    def parse(self) -> Node:
        node = self.parse_list("", "")
        if self.peek() is not None:
            raise Rejected(f"unexpected {self.peek()[1]!r} after a complete expression")  # type: ignore[index]
        return node

    def parse_list(self, open_: str, close: str) -> Node:
        """Comma-separated expressions; one item without a comma is the item itself."""
        items = [self.parse_expr()]
        while self.at(","):
            self.take()
            items.append(self.parse_expr())
        return items[0] if len(items) == 1 else ("tuple", open_, tuple(items), close)

    def parse_expr(self) -> Node:
        self.enter()
        node = self.parse_term()
        while self.at("+") or self.at("-"):
            op = self.take()[1]
            node = ("add" if op == "+" else "sub", node, self.parse_term())
        self.depth -= 1
        return node

    def parse_term(self) -> Node:
        node = self.parse_unary()
        while True:
            if self.at("*") or self.at("/"):
                op = self.take()[1]
                node = ("mul" if op == "*" else "div", node, self.parse_unary())
            elif self.starts_primary():
                right = self.parse_unary()
                if node[0] == "num" and right[0] == "num":
                    raise Rejected("two numbers side by side")  # "1 234" is not 234
                node = ("mul", node, right)
            else:
                return node

    def starts_primary(self) -> bool:
        token = self.peek()
        if token is None:
            return False
        return token[0] in _PRIMARY_START or (token[0] == "op" and token[1] in "([{")

    def parse_unary(self) -> Node:
        if self.at("-") or self.at("+"):
            op = self.take()[1]
            self.enter()
            operand = self.parse_unary()
            self.depth -= 1
            return ("neg", operand) if op == "-" else operand
        return self.parse_power()

    def parse_power(self) -> Node:
        base = self.parse_postfix()
        if self.at("^"):
            self.take()
            self.enter()
            exponent = self.parse_unary()
            self.depth -= 1
            return ("pow", base, exponent)
        return base

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        while self.at("!") or self.at("%"):
            node = ("fact" if self.take()[1] == "!" else "pct", node)
        return node

    def parse_group(self) -> Node:
        """A LaTeX argument: `{expr}`, or a single number or symbol token as in `\\frac12` or `\\sqrt2`."""
        if self.at("{"):
            self.take()
            self.enter()
            node = self.parse_expr()
            self.depth -= 1
            self.expect("}")
            return node
        kind, value = self.take()
        if kind == "num" and value.isdigit() and len(value) > 1:
            # LaTeX reads one character per bare argument: \frac12 is 1/2, so split the token.
            self.pos -= 1
            self.tokens[self.pos] = ("num", value[1:])
            value = value[0]
        if kind == "num":
            return ("num", _parse_number(value), "." in value or "e" in value.lower())
        if kind == "name" and len(value) == 1:
            return ("sym", value)
        raise Rejected(f"expected a {{...}} argument, got {value!r}")

    def parse_primary(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            node: Node = ("num", _parse_number(value), "." in value or "e" in value.lower())
            nxt = self.peek()
            if nxt is not None and nxt[1] in _LATEX_FRACS and node[1].denominator == 1 and not node[2]:
                return self.parse_mixed_number(node)
            return node
        if kind == "name":
            if value == "pi":
                return ("pi",)
            if value in ("inf", "oo"):
                return ("inf",)
            if value == "sqrt":
                return ("sqrt", self.parse_call_argument(), None)
            if value in FUNCTIONS:
                return ("fn", value, self.parse_call_argument())
            if len(value.split("_")[0]) > 1:
                raise Rejected(f"unknown name {value!r}")
            return ("sym", value)
        if kind == "cmd":
            if value == "\\pi":
                return ("pi",)
            if value == "\\infty":
                return ("inf",)
            if value in _LATEX_FRACS:
                numerator = self.parse_group()
                return ("div", numerator, self.parse_group())
            if value == "\\sqrt":
                index = None
                if self.at("["):
                    self.take()
                    self.enter()
                    index = self.parse_expr()
                    self.depth -= 1
                    self.expect("]")
                return ("sqrt", self.parse_group(), index)
            return ("fn", value[1:], self.parse_call_argument())
        if value in "([":
            close = ")" if value == "(" else "]"
            self.enter()
            node = self.parse_list(value, close)
            self.depth -= 1
            token = self.take()
            # Half-open intervals close with the other bracket: (1, 2] and [1, 2).
            if token[1] not in ")]" or (node[0] != "tuple" and token[1] != close):
                raise Rejected(f"unbalanced bracket: {value!r} closed by {token[1]!r}")
            return node if node[0] != "tuple" else ("tuple", value, node[2], token[1])
        if value == "{":
            self.enter()
            node = self.parse_expr()
            self.depth -= 1
            self.expect("}")
            return node
        raise Rejected(f"unexpected {value!r}")

    def parse_call_argument(self) -> Node:
        """The argument of sqrt(x), \\sin x, \\ln(2): a bracketed expression or one primary."""
        self.enter()
        node = self.parse_postfix()
        self.depth -= 1
        return node

    def parse_mixed_number(self, whole: Node) -> Node:
        start = self.pos
        self.take()
        numerator = self.parse_group()
        denominator = self.parse_group()
        if numerator[0] == "num" and denominator[0] == "num" and not numerator[2] and not denominator[2]:
            return ("add", whole, ("div", numerator, denominator))
        self.pos = start  # 2\frac{x}{3} is a product, handled by implicit multiplication
        return whole


def parse(text: str) -> Node:
    """Parse normalised answer text into an AST; raise Rejected when it is outside the grammar."""
    tokens = tokenize(text)
    if not tokens:
        raise Rejected("empty expression")
    return _Parser(tokens).parse()


# ---------------------------------------------------------------------------------------------------------
# exact evaluation (Fraction): the fast path, no sympy


def _check_size(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise Rejected(f"an intermediate number exceeds {MAX_BITS} bits")
    return value


def _exact_root(value: Fraction, index: int) -> Fraction:
    """The rational index-th root of `value`, or NotRational."""
    if index < 1 or index > 64 or (value < 0 and index % 2 == 0):
        raise NotRational
    sign = -1 if value < 0 else 1
    roots = []
    for part in (abs(value.numerator), value.denominator):
        root = round(part ** (1.0 / index)) if part.bit_length() < 1000 else _integer_root(part, index)
        for candidate in (root - 1, root, root + 1):
            if candidate >= 0 and candidate**index == part:
                roots.append(candidate)
                break
        else:
            raise NotRational
    return sign * Fraction(roots[0], roots[1])


def _integer_root(n: int, index: int) -> int:
    """floor(n ** (1/index)) by Newton's method on integers (floats overflow past 1e308)."""
    x = 1 << ((n.bit_length() + index - 1) // index)
    while True:
        y = ((index - 1) * x + n // x ** (index - 1)) // index
        if y >= x:
            return x
        x = y


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        if exponent.denominator > 64:
            raise NotRational
        return _power(_exact_root(base, exponent.denominator), Fraction(exponent.numerator))
    n = exponent.numerator
    if base in (0, 1, -1):
        if base == 0 and n < 0:
            raise Rejected("0 raised to a negative power")
        return base**n if base != 0 or n != 0 else Fraction(1)
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if abs(n) * bits > MAX_BITS:
        raise Rejected(f"power of {abs(n)} on a {bits}-bit number exceeds {MAX_BITS} bits")
    return base**n


def exact_value(node: Node) -> tuple[Fraction, bool]:
    """(value, inexact) of a rational expression; NotRational if it is not one, Rejected if over a bound.

    `inexact` is True when a decimal literal took part: such values compare with a relative tolerance.
    """
    kind = node[0]
    if kind == "num":
        return node[1], node[2]
    if kind in ("sym", "pi", "inf", "fn", "tuple"):
        raise NotRational
    if kind == "neg":
        value, inexact = exact_value(node[1])
        return -value, inexact
    if kind == "pct":
        value, inexact = exact_value(node[1])
        return value / 100, inexact
    if kind == "fact":
        value, inexact = exact_value(node[1])
        if value.denominator != 1 or value < 0:
            raise Rejected(f"factorial of {value}")
        if value > MAX_FACTORIAL:
            raise Rejected(f"factorial of {value}, the limit is {MAX_FACTORIAL}")
        return Fraction(math.factorial(int(value))), inexact
    if kind == "sqrt":
        value, inexact = exact_value(node[1])
        index, index_inexact = exact_value(node[2]) if node[2] is not None else (Fraction(2), False)
        if index.denominator != 1:
            raise NotRational
        return _exact_root(value, int(index)), inexact or index_inexact
    left, left_inexact = exact_value(node[1])
    right, right_inexact = exact_value(node[2])
    inexact = left_inexact or right_inexact
    if kind == "add":
        return _check_size(left + right), inexact
    if kind == "sub":
        return _check_size(left - right), inexact
    if kind == "mul":
        return _check_size(left * right), inexact
    if kind == "div":
        if right == 0:
            raise Rejected("division by zero")
        return _check_size(left / right), inexact
    if kind == "pow":
        return _check_size(_power(left, right)), inexact
    raise AssertionError(f"unknown node kind {kind!r}")


def percent_alternatives(a: Node, b: Node) -> list[tuple[Node, Node]]:
    """The readings under which two answers are compared, when exactly one ends in a percent sign.

    "50%" against "0.5" means 0.5 and against "50" means 50 ("what percent...?" answered with the sign),
    so a lone top-level percent is tried both as /100 and as written. Two percents compare as written.
    """
    if (a[0] == "pct") == (b[0] == "pct"):
        return [(a, b)]
    if a[0] == "pct":
        return [(a, b), (a[1], b)]
    return [(a, b), (a, b[1])]


def has_inexact(node: Node) -> bool:
    """Whether any number literal in the tree had a decimal point or an exponent."""
    if node[0] == "num":
        return bool(node[2])
    return any(has_inexact(child) for child in _children(node))


def _children(node: Node) -> list[Node]:
    if node[0] == "tuple":
        return list(node[2])
    if node[0] == "fn":
        return [node[2]]
    if node[0] == "sqrt":
        return [child for child in node[1:] if child is not None]
    return [child for child in node[1:] if isinstance(child, tuple)]


# ---------------------------------------------------------------------------------------------------------
# sympy construction (only in the symbolic worker process)


def to_sympy(node: Node) -> Any:
    """Build the sympy object for `node` from constructors only: no string ever reaches sympy."""
    import sympy

    kind = node[0]
    if kind == "num":
        return sympy.Rational(node[1].numerator, node[1].denominator)
    if kind == "sym":
        return sympy.Symbol(node[1])
    if kind == "pi":
        return sympy.pi
    if kind == "inf":
        return sympy.oo
    if kind == "tuple":
        return sympy.Tuple(*(to_sympy(item) for item in node[2]))
    if kind == "neg":
        return -to_sympy(node[1])
    if kind == "pct":
        return to_sympy(node[1]) / 100
    if kind == "fact":
        arg = to_sympy(node[1])
        if arg.is_number and (not arg.is_integer or arg < 0 or arg > MAX_FACTORIAL):
            raise Rejected(f"factorial of {arg}")
        return sympy.factorial(arg)
    if kind == "sqrt":
        arg = to_sympy(node[1])
        return sympy.sqrt(arg) if node[2] is None else sympy.root(arg, to_sympy(node[2]))
    if kind == "fn":
        functions = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "exp": sympy.exp}
        arg = to_sympy(node[2])
        return sympy.log(arg) if node[1] in ("ln", "log") else functions[node[1]](arg)
    left, right = to_sympy(node[1]), to_sympy(node[2])
    if kind == "add":
        return left + right
    if kind == "sub":
        return left - right
    if kind == "mul":
        return left * right
    if kind == "div":
        if right == 0:
            raise Rejected("division by zero")
        return left / right
    if kind == "pow":
        if right.is_Integer and abs(int(right)) > MAX_SYMBOLIC_EXPONENT:
            raise Rejected(f"integer exponent {right}, the limit is {MAX_SYMBOLIC_EXPONENT}")
        return left**right
    raise AssertionError(f"unknown node kind {kind!r}")
