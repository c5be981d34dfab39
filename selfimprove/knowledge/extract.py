"""Deterministic concept and relation extraction from a word problem and its solution steps.

The question gives the stated quantities: each number with its role (count, money, price, rate, time, size,
factor, percent, parts, gain, loss) and, where one is named, the object it counts ("apple"). Roles come from
local cues around the number (`$7 an hour` is a rate, `4 times` a factor, `gives away 5 of them` a loss),
written for the sentence forms of selfimprove/tasks/arith.py and general enough for GSM8K text: a sentence
no cue fits gives a quantity of role "number" (or no quantity), never an error.

The solution gives the relations: each `<<a*b=c>>` calculator annotation says which quantities combine by
which operation. Its operands are matched to the previous results and the stated quantities by value, so
"70-19" after "10*7=70" reads "money = total - loss": the total of step 1 minus a stated loss. A step that
combines only stated quantities by + or * yields a "total"; any other step's result takes its role from
the unit written after it (`51 dollars` is money, `4 pears` a count of pears).

Capable models can extract too: `llm_extraction_prompt` asks for JSON, and `parse_llm_extraction` parses it
strictly (every value must be stated in the question or computed by an earlier step, every role and
operation must be known), so model output becomes a validated `Extraction`, never text pasted into a graph.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from fractions import Fraction

from selfimprove.tasks import arith

__all__ = [
    "INPUT_ROLES",
    "OPERATIONS",
    "RESULT_ROLES",
    "ROLES",
    "Extraction",
    "Quantity",
    "Step",
    "extract",
    "extract_question",
    "llm_extraction_prompt",
    "parse_llm_extraction",
    "singular",
]

# Roles a stated quantity can have, and roles only a computed result has ("total": two stated quantities
# combined by + or *). "number" is a quantity whose role no cue decided.
INPUT_ROLES = ("count", "money", "price", "rate", "time", "size", "factor", "percent", "parts", "gain")
INPUT_ROLES += ("loss",)
RESULT_ROLES = ("total",)
ROLES = (*INPUT_ROLES, *RESULT_ROLES, "number")
OPERATIONS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}
SYMBOLS = {name: symbol for symbol, name in OPERATIONS.items()}
_TIME = r"(?:hours?|days?|weeks?|months?|years?|minutes?|seconds?)"
_MONEY_WORDS = frozenset({"dollar", "dollars", "buck", "bucks"})
# Words that follow a number without naming what it counts.
_STOP_WORDS = (
    "a an the of and or to in on at for per each every more less fewer extra additional than as from with "
    "by into times time percent his her their its my our your he she it they we you i them him me us this "
    "that these those other another all some any many much few half twice dozen one two three four five six "
    "seven eight nine ten so then is are was were be been has have had do does did will can would could "
    "should total left remaining altogether together same new old such"
)
_STOP = frozenset(_STOP_WORDS.split()) | frozenset(ROLES) | frozenset(OPERATIONS.values())
# Plural -> singular for the generator's own objects (two-word "toy cars" among them).
_KNOWN = {t.plural: t.singular for t in (*arith._OBJECTS, *arith._CONTAINERS)}
_IE_WORDS = frozenset({"cookies", "movies", "pies", "ties", "brownies", "calories", "smoothies", "hoodies"})
_OES_WORDS = frozenset({"tomatoes", "potatoes", "heroes", "mangoes", "echoes", "volcanoes", "mosquitoes"})
_IRREGULAR = {"people": "person", "children": "child", "men": "man", "women": "woman", "feet": "foot"}
_IRREGULAR |= {"teeth": "tooth", "mice": "mouse", "geese": "goose", "sheep": "sheep", "fish": "fish"}

# at most 30 digits: a longer run is not a quantity, and int() of 10,000 digits is slow (and refused)
_NUMBER = re.compile(r"(\$\s?)?(?<![\w.])(\d{1,3}(?:,\d{3}){1,9}|\d{1,30})(\.\d{1,12})?(?![\w])(\s?%)?")
# Written numbers GSM8K uses ("twice as many", "three times"); "one" and "a" are left out: "keeps one pile"
# and "a week" are not quantities the solution computes with.
_WORD_VALUES = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_WORD_VALUES |= {"ten": 10, "eleven": 11, "twelve": 12, "half": 2, "twice": 2, "double": 2, "triple": 3}
_WORD_VALUES |= {"dozen": 12}
_WORD_ROLES = {"half": "factor", "twice": "factor", "double": "factor", "triple": "factor", "dozen": "size"}
_WORD_NUMBER = re.compile(rf"\b({'|'.join(_WORD_VALUES)})\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?:[^.?!]|[.?!](?!\s|$))+[.?!]?")  # "0.2" does not end a sentence
_WORDS = re.compile(r"[\s-]*([a-z]+)(?:\s+([a-z]+))?")
_ANNOTATION = re.compile(r"(\$\s*)?<<([^<>=]*)=([^<>]*)>>\s*([-+]?\d[\d,]*(?:\.\d+)?)?([^\n<]*)")
_FLAT = re.compile(r"\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(?:([-+*/])\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*)*")
_OPERAND = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")
_OPERATOR = re.compile(r"(?<=[\d\s])[-+*/]")

_LOSS_VERBS = (
    r"(?:gives? away|gave away|sells|sold|loses|lost|eats|ate|uses|used|gives|gave|spends|spent|breaks|"
    r"broke|donates|donated|throws away|threw away)"
)
_GAIN_VERBS = r"(?:earns?|earned|finds?|found|wins?|won|gets?|got|receives?|received|makes|made)"
_NOT_CONTAINERS = (
    "all each some one out most any half none both lot number total amount group set couple pair sum cost"
)
_SIZE_EXCLUDED = frozenset(_NOT_CONTAINERS.split())  # "all of 5" or "a total of 30" state no group size


def singular(word: str) -> str:
    """The singular of an English plural noun, by the regular rules plus a few exceptions."""
    w = word.lower()
    if w in _KNOWN:
        return _KNOWN[w]
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if w.endswith("ies") and len(w) > 4 and w not in _IE_WORDS:
        return w[:-3] + "y"
    if re.search(r"(?:ss|x|z|ch|sh)es$", w) or w in _OES_WORDS:
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 2:
        return w[:-1]
    return w


@dataclass(frozen=True)
class Quantity:
    """A number stated in the question, with its role and the object it counts (singular), if named."""

    text: str  # as written: "7", "$7", "50%"
    value: Fraction
    role: str
    obj: str | None
    sentence: int  # index of the sentence stating it

    @property
    def known(self) -> str:
        """How the thinking's Known line lists it: "rate 7", "percent 50%", "48" for an unknown role."""
        number = self.text.replace("$", "").replace(" ", "")
        return number if self.role == "number" else f"{self.role} {number}"


@dataclass(frozen=True)
class Step:
    """One calculator annotation of the solution, read as a relation between quantity roles."""

    expression: str  # "70-19", spaces removed
    result: str  # the annotated result as written ("51")
    op: str | None  # "add", "subtract", "multiply", "divide"; None when the expression mixes operations
    inputs: tuple[str, ...]  # the role of each operand, in order ("total", "loss")
    result_role: str
    obj: str | None  # what the result counts, when the solution names it
    input_obj: str | None  # what the first operand counts, when known
    from_previous: tuple[bool, ...]  # per operand: was it an earlier step's result

    @property
    def formula(self) -> str | None:
        """The relation, e.g. "money = total - loss"; None for an expression that mixes operations."""
        if self.op is None:
            return None
        return f"{self.result_role} = {f' {SYMBOLS[self.op]} '.join(self.inputs)}"


@dataclass(frozen=True)
class Extraction:
    """What one problem (and, when given, its solution) says: stated quantities and step relations."""

    quantities: tuple[Quantity, ...]
    steps: tuple[Step, ...] = ()

    @property
    def concepts(self) -> tuple[str, ...]:
        """The question's concepts in order of appearance: each quantity's object, then its role."""
        seen: dict[str, None] = {}
        for q in self.quantities:
            if q.obj is not None:
                seen.setdefault(q.obj)
            if q.role != "number":
                seen.setdefault(q.role)
        return tuple(seen)

    @property
    def roles(self) -> tuple[str, ...]:
        """The role of each stated quantity, in order."""
        return tuple(q.role for q in self.quantities)

    @property
    def structure(self) -> tuple[str, ...]:
        """The roles grouped by sentence, ("count+size", "loss"): problems of one structure need the same
        operations in the same order ("8 jars with 7 in each" multiplies, "packs them into jars of 7"
        divides)."""
        groups: list[list[str]] = []
        last = None
        for q in self.quantities:
            if q.sentence != last:
                groups.append([])
                last = q.sentence
            groups[-1].append(q.role)
        return tuple("+".join(g) for g in groups)

    @property
    def known(self) -> str:
        return ", ".join(q.known for q in self.quantities)

    @property
    def plan(self) -> str:
        """The operations in order, as written in the annotations: "10*7, 70-19, 51/3"."""
        return ", ".join(s.expression for s in self.steps)


# ---------------------------------------------------------------------------------------------------------
# the question


def _object_after(right: str) -> str | None:
    """The object named right after a number ("apples" in "12 apples ..."), singular; None if none."""
    m = _WORDS.match(right.lower())
    if m is None:
        return None
    first, second = m.groups()
    if second is not None and f"{first} {second}" in _KNOWN:
        return _KNOWN[f"{first} {second}"]
    if first in _STOP or len(first) < 2:
        return None
    return singular(first)


def _role_of(
    left: str, right: str, dollar: bool, percent: bool, previous: Quantity | None
) -> tuple[str, str | None]:
    """(role, object) of a number from its sentence context: `left` before it, `right` after it."""
    low_left, low_right = left.lower(), right.lower()
    if percent or re.match(r"\s*percent\b", low_right):
        return "percent", None
    if re.match(r"\s*times\b", low_right):
        return "factor", None
    if re.match(rf"\s*(?:an?|per|each|every)\s+{_TIME}\b", low_right):
        return "rate", None
    if re.match(rf"\s*{_TIME}\b", low_right):
        return "time", None
    if dollar:
        per = re.match(r"\s*(?:per|a|an)\s+([a-z]+)", low_right)
        each_for = re.search(r"\beach ([a-z]+(?: [a-z]+)?) for\s*$", low_left)
        if re.match(r"\s*each\b", low_right) or each_for or per:
            at = re.search(r"\b([a-z]+) at\s*$", low_left)
            obj = (
                singular(per.group(1))
                if per and per.group(1) not in _STOP
                else singular(each_for.group(1))
                if each_for
                else singular(at.group(1))
                if at and at.group(1) not in _STOP
                else previous.obj
                if previous is not None
                else None
            )
            return "price", obj
        if re.match(r"\s*to\s+[A-Z]", right):
            return "loss", None
        if re.search(r"\b(?:gives?|gave|hands?|sends?|pays?) (?:him|her|them|me|us)\s*$", low_left):
            return "gain", None
        if re.search(r"\b(?:spends?|spent|pays?|paid|loses|lost|donates?|donated|gives|gave)\s*$", low_left):
            return "loss", None
        if re.search(rf"\b{_GAIN_VERBS}\s*$", low_left):
            return "gain", None
        return "money", None
    more = re.match(r"\s*(?:more|extra|additional)\b(.*)", low_right)
    if more:
        return "gain", _object_after(more.group(1))
    if re.search(rf"\b{_LOSS_VERBS}\s*$", low_left) and re.match(r"\s*(?:of\b|to\b|[.,;!?]|$)", low_right):
        return "loss", None
    each = re.match(r"[\s-]*([a-z]+(?: [a-z]+)?) in each\b", low_right)
    if each:
        return "size", singular(each.group(1))
    of = re.search(r"\b([a-z]+) of\s*$", low_left)
    if of and of.group(1) not in _SIZE_EXCLUDED and of.group(1) not in _STOP:
        return "size", singular(of.group(1))
    if re.match(r"\s*(?:equal\s+[a-z]+|people|ways|groups|parts|piles|pieces|portions|friends)\b", low_right):
        return "parts", None
    if re.search(r"\b(?:among|between)\s*$", low_left):
        return "parts", None
    obj = _object_after(right)
    if obj is not None:
        return "count", obj
    if previous is not None and re.search(r"\band\s*$", low_left) and previous.role in ("count", "time"):
        return previous.role, previous.obj
    return "number", None


@functools.lru_cache(maxsize=4096)  # retrieval and thinking data read each question several times in a row
def extract_question(question: str) -> Extraction:
    """The stated quantities of a question (no steps). Deterministic; never raises for any str."""
    quantities: list[Quantity] = []
    for index, sentence in enumerate(_SENTENCE.findall(question)):
        previous: Quantity | None = None
        found = [(m.start(), m) for m in _NUMBER.finditer(sentence)]
        found += [(m.start(), m) for m in _WORD_NUMBER.finditer(sentence)]
        for _, m in sorted(found, key=lambda item: item[0]):
            left, right = sentence[: m.start()], sentence[m.end() :]
            if m.re is _WORD_NUMBER:
                word = m.group().lower()
                text, value = word, Fraction(_WORD_VALUES[word])
                role, obj = _role_of(left, right, False, False, previous)
                role = _WORD_ROLES.get(word, role)
            else:
                dollar, whole, decimals, percent = m.groups()
                text = m.group().strip()
                value = (
                    Fraction(whole.replace(",", "") + decimals)
                    if decimals
                    else Fraction(int(whole.replace(",", "")))
                )
                role, obj = _role_of(left, right, bool(dollar), bool(percent), previous)
            previous = Quantity(text, value, role, obj, index)
            quantities.append(previous)
    return Extraction(tuple(quantities))


# ---------------------------------------------------------------------------------------------------------
# the solution


def _operands(expression: str) -> tuple[list[Fraction], str | None] | None:
    """Operand values and the one operator of a flat expression ("100-50-30"); None if not flat."""
    if len(expression) > 200 or _FLAT.fullmatch(expression) is None:
        return None
    values = [Fraction(v.replace(",", "")) for v in _OPERAND.findall(expression)]
    ops = set(_OPERATOR.findall(expression))
    if len(ops) > 1:
        return values, None
    return values, (OPERATIONS[ops.pop()] if ops else None)


def _matches(q: Quantity, value: Fraction) -> bool:
    # "keeps 50% of them" is written 78/2 in the solution: a percent p matches p and 100/p
    return q.value == value or (q.role == "percent" and q.value != 0 and value * q.value == 100)


class _Result:
    __slots__ = ("obj", "role", "taken", "value")

    def __init__(self, value: Fraction | None, role: str, obj: str | None) -> None:
        self.value, self.role, self.obj, self.taken = value, role, obj, False


def _unit(tail: str, dollar: bool, known: set[str]) -> tuple[str | None, str | None]:
    """(role, object) named by the text after an annotated result: "dollars" -> money, "pears" -> pear."""
    low = tail.lower()
    if re.match(rf"\s*(?:[a-z]+\s+)?(?:per|an?|each|every)\s+{_TIME}\b", low):
        return "rate", None
    m = _WORDS.match(low)
    words = m.groups() if m else (None, None)
    if words[0] in _MONEY_WORDS or (dollar and (words[0] is None or words[0] in _STOP)):
        return "money", None
    if words[0] is None:
        return None, None
    if words[1] is not None and singular(f"{words[0]} {words[1]}") in known:
        return "count", singular(f"{words[0]} {words[1]}")
    if f"{words[0]} {words[1]}" in _KNOWN:
        return "count", _KNOWN[f"{words[0]} {words[1]}"]
    if words[0] in _STOP or len(words[0]) < 2:
        return None, None
    return "count", singular(words[0])


def extract(question: str, solution: str | None = None) -> Extraction:
    """The question's quantities and, from the solution's annotations, its step relations."""
    base = extract_question(question)
    if not solution:
        return base
    known_objects = {q.obj for q in base.quantities if q.obj is not None}
    used = [False] * len(base.quantities)
    results: list[_Result] = []
    steps: list[Step] = []
    for m in _ANNOTATION.finditer(solution):
        dollar, expression, result_text, _echo, tail = m.groups()
        # an expression that is not flat arithmetic over plain numbers ("(3+4)*2") is kept as a step of
        # the plan but names no relation: fewer concepts, never an error
        values, op = _operands(expression) or ([], None)
        roles, objs, previous = [], [], []
        for value in values:
            role, obj, prev = "number", None, False
            fresh = next((r for r in reversed(results) if not r.taken and r.value == value), None)
            if fresh is not None:
                fresh.taken, role, obj, prev = True, fresh.role, fresh.obj, True
            else:
                i = next(
                    (i for i, q in enumerate(base.quantities) if not used[i] and _matches(q, value)), None
                )
                if i is not None:
                    used[i], role, obj = True, base.quantities[i].role, base.quantities[i].obj
                else:
                    old = next((r for r in reversed(results) if r.value == value), None)
                    if old is not None:
                        role, obj, prev = old.role, old.obj, True
                    else:
                        q = next((q for q in base.quantities if _matches(q, value)), None)
                        if q is not None:
                            role, obj = q.role, q.obj
            roles.append(role)
            objs.append(obj)
            previous.append(prev)
        unit_role, unit_obj = _unit(tail or "", bool(dollar), known_objects)
        if op in ("add", "multiply") and not any(previous):
            result_role = "total"
        elif unit_role is not None:
            result_role = unit_role
        else:
            result_role = roles[0] if roles and roles[0] in ("count", "money", "total") else "number"
        result_obj = unit_obj if unit_role == "count" else None
        if result_obj is not None:
            known_objects.add(result_obj)
        try:
            result_value: Fraction | None = Fraction(result_text.replace(",", "").strip()[:40])
        except (ValueError, ZeroDivisionError):
            result_value = None
        results.append(_Result(result_value, result_role, result_obj))
        steps.append(
            Step(
                expression=re.sub(r"\s+", "", expression),
                result=result_text.strip(),
                op=op,
                inputs=tuple(roles) if op is not None else (),
                result_role=result_role,
                obj=result_obj,
                input_obj=objs[0] if objs else None,
                from_previous=tuple(previous),
            )
        )
    return Extraction(base.quantities, tuple(steps))


# ---------------------------------------------------------------------------------------------------------
# optional: extraction by a capable model, parsed and validated


def llm_extraction_prompt(question: str, solution: str) -> str:
    """A prompt asking a capable model for the extraction as one JSON object (see parse_llm_extraction)."""
    return (
        "Read the math word problem and its solution. Reply with one JSON object and nothing else:\n"
        '{"quantities": [{"value": "7", "role": "rate", "object": null}, ...],\n'
        ' "steps": [{"expression": "10*7", "result": "70", "inputs": ["time", "rate"], '
        '"result_role": "total", "object": null}, ...]}\n'
        f"quantities: every number stated in the problem, in order; role is one of {', '.join(INPUT_ROLES)}, "
        "number; object is the singular noun it counts, or null.\n"
        "steps: every calculation of the solution, in order, one operation type per expression; inputs "
        f"gives the role of each operand; result_role is one of {', '.join(ROLES)}.\n\n"
        f"Problem: {question}\nSolution: {solution}\nJSON:"
    )


def _first_json_object(text: str) -> dict | None:
    start = text.find("{")
    while 0 <= start < len(text):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        return obj if isinstance(obj, dict) else None
    return None


_NAME = re.compile(r"[a-z][a-z ]{0,29}")


def _value(text: object) -> Fraction | None:
    if not isinstance(text, (str, int)) or isinstance(text, bool) or len(str(text)) > 30:
        return None
    try:
        return Fraction(str(text).replace(",", "").replace("$", "").replace("%", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


def parse_llm_extraction(text: str, question: str) -> tuple[Extraction | None, tuple[str, ...]]:
    """(extraction, errors) from a model's reply to `llm_extraction_prompt`; never raises for any str.

    Strict: the reply must hold one JSON object of the asked shape; every quantity must be stated in the
    question, every step's expression must be flat arithmetic whose operands are stated quantities or
    earlier results and whose value equals its result, and every role, object and operation must be valid.
    Any violation returns (None, errors): model output never reaches the graph unchecked.
    """
    errors: list[str] = []
    data = _first_json_object(text[:100_000])
    if data is None:
        return None, ("no JSON object in the reply",)
    raw_quantities, raw_steps = data.get("quantities"), data.get("steps")
    if not isinstance(raw_quantities, list) or not isinstance(raw_steps, list):
        return None, ("'quantities' and 'steps' must both be lists",)
    if len(raw_quantities) > 50 or len(raw_steps) > 50:
        return None, ("more than 50 quantities or steps",)
    stated = extract_question(question).quantities
    quantities: list[Quantity] = []
    for i, q in enumerate(raw_quantities):
        if not isinstance(q, dict):
            errors.append(f"quantity {i} is not an object")
            continue
        value, role, obj = _value(q.get("value")), q.get("role"), q.get("object")
        if value is None or not any(_matches(q, value) or q.value == value * 100 for q in stated):
            errors.append(f"quantity {i}: value {q.get('value')!r} is not a number stated in the question")
        if role not in (*INPUT_ROLES, "number"):
            errors.append(f"quantity {i}: role {role!r} is not one of {', '.join(INPUT_ROLES)}, number")
        if obj is not None and (not isinstance(obj, str) or _NAME.fullmatch(obj) is None):
            errors.append(f"quantity {i}: object {obj!r} is not a lower-case noun of at most 30 letters")
        if value is not None and isinstance(role, str):
            text_value = str(q.get("value"))
            quantities.append(Quantity(text_value, value, role, obj if isinstance(obj, str) else None, 0))
    results: list[Fraction] = []
    steps: list[Step] = []
    for i, s in enumerate(raw_steps):
        if not isinstance(s, dict):
            errors.append(f"step {i} is not an object")
            continue
        expression, inputs = s.get("expression"), s.get("inputs")
        result, result_role, obj = _value(s.get("result")), s.get("result_role"), s.get("object")
        parsed = _operands(expression) if isinstance(expression, str) else None
        if parsed is None or parsed[1] is None:
            errors.append(f"step {i}: expression {expression!r} is not flat arithmetic with one operation")
            continue
        values, op = parsed
        try:
            computed = arith.evaluate_expression(expression)
        except ValueError as err:
            errors.append(f"step {i}: {err}")
            continue
        if result is None or computed != result:
            errors.append(f"step {i}: {expression} is {computed}, not {s.get('result')!r}")
        missing = [v for v in values if v not in results and not any(_matches(q, v) for q in quantities)]
        if missing:
            errors.append(f"step {i}: operands {[str(v) for v in missing]} are neither stated nor computed")
        if not isinstance(inputs, list) or len(inputs) != len(values) or any(r not in ROLES for r in inputs):
            errors.append(f"step {i}: inputs must list one role from {', '.join(ROLES)} per operand")
            continue
        if result_role not in ROLES:
            errors.append(f"step {i}: result_role {result_role!r} is not one of {', '.join(ROLES)}")
            continue
        if obj is not None and (not isinstance(obj, str) or _NAME.fullmatch(obj) is None):
            errors.append(f"step {i}: object {obj!r} is not a lower-case noun of at most 30 letters")
            continue
        steps.append(
            Step(
                expression=re.sub(r"\s+", "", expression),
                result=str(s.get("result")),
                op=op,
                inputs=tuple(inputs),
                result_role=result_role,
                obj=obj,
                input_obj=None,
                from_previous=tuple(v in results for v in values),
            )
        )
        results.append(computed)
    if errors:
        return None, tuple(errors)
    return Extraction(tuple(quantities), tuple(steps)), ()
