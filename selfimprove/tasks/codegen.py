"""Built-in code tasks: small Python functions over lists, strings and integers, with generated tests.

A k-step task is a chain of k operations on one value: k-1 transformations ("keep the even numbers",
"reverse the string", "add 3"), then a final operation that is returned ("return the sum of the numbers",
or one more transformation whose result is returned). The prompt is a HumanEval-style signature and
docstring with one worked example; the gold body has exactly k lines, one per operation,

    def f(xs):
        \"\"\"Keep the even numbers, then add 3 to each number, then return the sum of the numbers.
        >>> f([1, 2, 4])
        12
        \"\"\"
        xs = [x for x in xs if x % 2 == 0]
        xs = [x + 3 for x in xs]
        return sum(xs)

so steps are lines of code, as the searches expect, and the step count is the difficulty knob. Phrases map
one-to-one onto lines on purpose: a ~1M-parameter model can learn the mapping, then improve on it by search.
Tests are asserts on five generated inputs, their expected values computed by the gold expressions (each
assembled program is re-run against its tests when made); they must give at least two distinct outputs,
so no constant function passes. Splits are disjoint by construction: a task belongs to the split
chosen by a stable hash of its gold body, so no function can appear in two splits, whatever the seeds.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from typing import Any, NamedTuple

from selfimprove.tasks.splits import SPLITS, check_generator_request, hash_split
from selfimprove.tasks.task import Task

__all__ = ["GENERATOR_VERSION", "MAX_STEPS", "MIN_STEPS", "SPLITS", "generate_code_tasks", "split_of"]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the text generated for a given (split, seed, steps) changes
MIN_STEPS = 1
MAX_STEPS = 6
_NUM_TESTS = 5
_MAX_VALUE = 10**6  # larger intermediate values are resampled: they make examples unreadable
_ALPHABET = "abcdeXYZ 12"


class _Op(NamedTuple):
    phrase: str  # what the docstring says
    expr: str  # the Python expression over the domain's variable: the gold line, and how outputs are computed


class _Domain(NamedTuple):
    var: str  # the argument's name
    noun: str  # what a returned transformation result is called
    transforms: Callable[[random.Random], list[_Op]]
    reducers: Callable[[random.Random], list[_Op]]
    sample: Callable[[random.Random], Any]


# --- lists of integers ---------------------------------------------------------------------------------


def _list_transforms(rng: random.Random) -> list[_Op]:
    k = rng.randint(2, 9)
    return [
        _Op("keep the even numbers", "[x for x in xs if x % 2 == 0]"),
        _Op("keep the odd numbers", "[x for x in xs if x % 2 == 1]"),
        _Op(f"keep the numbers greater than {k}", f"[x for x in xs if x > {k}]"),
        _Op(f"keep the numbers less than {k}", f"[x for x in xs if x < {k}]"),
        _Op("keep the positive numbers", "[x for x in xs if x > 0]"),
        _Op(f"remove every {k}", f"[x for x in xs if x != {k}]"),
        _Op(f"add {k} to each number", f"[x + {k} for x in xs]"),
        _Op(f"subtract {k} from each number", f"[x - {k} for x in xs]"),
        _Op(f"multiply each number by {k}", f"[x * {k} for x in xs]"),
        _Op("square each number", "[x * x for x in xs]"),
        _Op("take the absolute value of each number", "[abs(x) for x in xs]"),
        _Op(f"take each number modulo {k}", f"[x % {k} for x in xs]"),
        _Op("sort the numbers", "sorted(xs)"),
        _Op("sort the numbers in descending order", "sorted(xs, reverse=True)"),
        _Op("reverse the list", "xs[::-1]"),
        _Op(f"keep the first {k} numbers", f"xs[:{k}]"),
        _Op(f"drop the first {k} numbers", f"xs[{k}:]"),
        _Op("remove duplicates", "list(dict.fromkeys(xs))"),
    ]


def _list_reducers(rng: random.Random) -> list[_Op]:
    k = rng.randint(2, 9)
    return [
        _Op("return the sum of the numbers", "sum(xs)"),
        _Op("return how many numbers there are", "len(xs)"),
        _Op("return the largest number, or 0 if there is none", "max(xs, default=0)"),
        _Op("return the smallest number, or 0 if there is none", "min(xs, default=0)"),
        _Op("return the first number, or -1 if there is none", "xs[0] if xs else -1"),
        _Op(f"return how many times {k} appears", f"xs.count({k})"),
    ]


def _list_sample(rng: random.Random) -> list[int]:
    return [rng.randint(-9, 20) for _ in range(rng.choice((0, 3, 4, 5, 6, 7, 8)))]


# --- strings -------------------------------------------------------------------------------------------


def _str_transforms(rng: random.Random) -> list[_Op]:
    k = rng.randint(1, 5)
    c, d = rng.sample("abcde", 2)
    return [
        _Op("make it lowercase", "s.lower()"),
        _Op("make it uppercase", "s.upper()"),
        _Op("swap the case of each letter", "s.swapcase()"),
        _Op("reverse the string", "s[::-1]"),
        _Op(f"remove every '{c}'", f"s.replace('{c}', '')"),
        _Op(f"replace every '{c}' with '{d}'", f"s.replace('{c}', '{d}')"),
        _Op("remove the spaces", "s.replace(' ', '')"),
        _Op("strip spaces from both ends", "s.strip()"),
        _Op("keep only the letters", "''.join(ch for ch in s if ch.isalpha())"),
        _Op("keep only the digits", "''.join(ch for ch in s if ch.isdigit())"),
        _Op(f"keep the first {k} characters", f"s[:{k}]"),
        _Op(f"drop the first {k} characters", f"s[{k}:]"),
        _Op("double every character", "''.join(ch * 2 for ch in s)"),
    ]


def _str_reducers(rng: random.Random) -> list[_Op]:
    c = rng.choice("abcde")
    return [
        _Op("return its length", "len(s)"),
        _Op(f"return how many times '{c}' appears", f"s.count('{c}')"),
        _Op("return whether it reads the same backwards", "s == s[::-1]"),
        _Op("return how many vowels it has", "sum(ch in 'aeiou' for ch in s)"),
        _Op("return whether it is all letters", "s.isalpha()"),
    ]


def _str_sample(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 10)))


# --- integers ------------------------------------------------------------------------------------------


def _int_transforms(rng: random.Random) -> list[_Op]:
    k = rng.randint(2, 9)
    return [
        _Op(f"add {k}", f"n + {k}"),
        _Op(f"subtract {k}", f"n - {k}"),
        _Op(f"multiply by {k}", f"n * {k}"),
        _Op(f"divide by {k}, rounding down", f"n // {k}"),
        _Op(f"take the remainder modulo {k}", f"n % {k}"),
        _Op("square it", "n * n"),
        _Op("take the absolute value", "abs(n)"),
        _Op("replace it by the sum of its digits", "sum(int(d) for d in str(abs(n)))"),
        _Op("reverse its digits", "int(str(abs(n))[::-1])"),
        _Op(f"take the larger of it and {k}", f"max(n, {k})"),
        _Op(f"take the smaller of it and {k}", f"min(n, {k})"),
    ]


def _int_reducers(rng: random.Random) -> list[_Op]:
    return [
        _Op("return whether it is even", "n % 2 == 0"),
        _Op("return how many digits it has", "len(str(abs(n)))"),
        _Op("return whether it is positive", "n > 0"),
    ]


def _int_sample(rng: random.Random) -> int:
    return rng.randint(-50, 200)


_DOMAINS = (
    _Domain("xs", "list", _list_transforms, _list_reducers, _list_sample),
    _Domain("s", "string", _str_transforms, _str_reducers, _str_sample),
    _Domain("n", "number", _int_transforms, _int_reducers, _int_sample),
)

# --- one task ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _function(var: str, expr: str) -> Callable[[Any], Any]:
    """The template expression as a function (only this module's own templates are ever compiled)."""
    return eval(f"lambda {var}: {expr}")


def _too_big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > _MAX_VALUE
    if isinstance(value, (list, str)):
        return len(value) > 40 or any(_too_big(x) for x in value if isinstance(x, int))
    return False


class _Spec(NamedTuple):
    domain: _Domain
    ops: tuple[_Op, ...]  # k-1 transformations, then the returned operation
    body: str  # the gold body, one line per operation


def _draw_spec(rng: random.Random, k: int) -> _Spec:
    domain = rng.choice(_DOMAINS)
    ops = [rng.choice(domain.transforms(rng)) for _ in range(k - 1)]
    # The last operation is returned: a reducer, or (a third of the time) one more transformation.
    ops.append(rng.choice(domain.transforms(rng) if rng.random() < 1 / 3 else domain.reducers(rng)))
    lines = [f"    {domain.var} = {op.expr}" for op in ops[:-1]] + [f"    return {ops[-1].expr}"]
    return _Spec(domain, tuple(ops), "\n".join(lines))


def _write(rng: random.Random, spec: _Spec) -> tuple[str, str] | None:
    """(question, tests) for a spec, or None when its outputs are too large or too uniform."""
    domain, ops = spec.domain, spec.ops
    phrases = [op.phrase for op in ops]
    if not phrases[-1].startswith("return"):
        phrases[-1] += f" and return the {domain.noun}"
    sentence = ", then ".join(phrases)
    sentence = sentence[0].upper() + sentence[1:] + "."

    def run(value: Any) -> Any:
        for op in ops:
            value = _function(domain.var, op.expr)(value)
            if _too_big(value):
                raise OverflowError
        return value

    inputs: list[Any] = []
    while len(inputs) < _NUM_TESTS + 1:  # five tests and one docstring example, all distinct
        value = domain.sample(rng)
        if value not in inputs:
            inputs.append(value)
    try:
        outputs = [run(v) for v in inputs]
    except OverflowError:
        return None
    # The docstring shows the first example with a non-empty, non-zero output when there is one.
    shown = next((i for i, out in enumerate(outputs) if out), 0)
    inputs.insert(0, inputs.pop(shown))
    outputs.insert(0, outputs.pop(shown))
    if len({repr(o) for o in outputs[1:]}) < 2:  # a constant function would pass the tests
        return None
    question = (
        f'def f({domain.var}):\n    """{sentence}\n    >>> f({inputs[0]!r})\n    {outputs[0]!r}\n    """\n'
    )
    tests = "".join(f"assert f({v!r}) == {o!r}\n" for v, o in zip(inputs[1:], outputs[1:], strict=True))
    return question, tests


def _validate(question: str, body: str, tests: str) -> None:
    """Raise RuntimeError when the gold code disagrees with its tests (a template bug, never bad luck).

    Executes only code this module generated, never model output.
    """
    namespace: dict[str, Any] = {}
    try:
        exec(compile(question + body + "\n" + tests, "<codegen>", "exec"), namespace)
    except Exception as err:
        raise RuntimeError(f"codegen bug: {err!r}\n{question}{body}\n{tests}") from err


# --- splits and the public generator -------------------------------------------------------------------


def split_of(body: str) -> str:
    """The split a gold body belongs to (selfimprove.tasks.splits.hash_split)."""
    return hash_split(body)


def generate_code_tasks(
    split: str,
    n: int,
    *,
    seed: int,
    min_steps: int = 1,
    max_steps: int = 4,
    steps: int | None = None,
) -> list[Task]:
    """`n` distinct code tasks of `split` ("train", "val" or "test"), each of `steps` operations, or of a
    count drawn uniformly from min_steps..max_steps per task.

    Deterministic in (split, seed, min_steps, max_steps, steps); a smaller n returns a prefix. One-step
    tasks are few (a few hundred bodies in all); when a split has fewer distinct tasks than asked, the
    ones found are returned with a warning.
    """
    check_generator_request(
        split, n, min_steps=min_steps, max_steps=max_steps, steps=steps, lowest=MIN_STEPS, highest=MAX_STEPS
    )
    # A string seed hashes with SHA-512 inside random.Random, so streams are stable across processes.
    rng = random.Random(f"selfimprove.codegen/{split}/{seed}/{min_steps}/{max_steps}/{steps}")
    seen: set[str] = set()
    tasks: list[Task] = []
    misses, max_misses = 0, 2000 + 50 * n  # consecutive draws without a new task before giving up
    while len(tasks) < n and misses < max_misses:
        k = steps if steps is not None else rng.randint(min_steps, max_steps)
        spec = _draw_spec(rng, k)
        written = None
        if spec.body not in seen and split_of(spec.body) == split:
            written = _write(rng, spec)
        if written is None:
            misses += 1
            continue
        misses = 0
        (question, tests), body = written, spec.body
        _validate(question, body, tests)
        seen.add(body)
        tasks.append(
            Task(
                id=f"codegen-{split}-s{k}-{len(tasks):06d}",
                question=question,
                answer="",
                solution=body,
                kind="code",
                metadata={
                    "steps": k,
                    "split": split,
                    "domain": spec.domain.noun,
                    "entry_point": "f",
                    "prompt": question,
                    "completion": "body",
                    "tests": tests,
                },
            )
        )
    if len(tasks) < n:
        log.warning(
            "codegen %s split (steps=%s): only %d distinct tasks found of %d asked",
            split,
            steps,
            len(tasks),
            n,
        )
    return tasks
