"""Test plans: gold test code cut into units that each report pass or fail, so a score can be a fraction.

The tests are Python source run after the program in the same module namespace, as HumanEval's and MBPP's
own harnesses do (program + "\\n" + tests). Their top-level statements become units, in order:

- a statement containing an `assert` (other than `assert True`, which checks nothing) is one test;
- a test function (a top-level `def` whose body asserts, called only as `name(positional args)` statements,
  like HumanEval's `check(candidate)`) keeps its scope, but each of its assert-bearing statements is
  wrapped to report its own result to a callback the runner passes in, so `check` yields one result per
  assert and a failing assert does not hide the ones after it. The runner builds the function from the
  compiled gold code itself, so a program that rebinds the name cannot substitute its own;
- every other statement (imports, helpers, data) is setup: it must succeed, or the run is an error.

Each call of a test function counts its wrapped statements; the plan's `total` is the number of results a
fully passing run reports. Plans are built in the parent from trusted gold tests, never from model output.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["RECORD", "TestPlan", "plan_tests"]

RECORD = "__selfimprove_record"  # keyword-only callback of a wrapped test function
_BASE = "__selfimprove_base"  # BaseException, passed in so a program cannot shadow the name
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class TestPlan:
    """Units as the runner's job expects them (JSON-ready dicts) and the number of results to expect."""

    units: tuple[dict[str, object], ...]
    total: int
    lines: tuple[int, ...]  # first line of each unit in the tests, for messages


def _asserts(node: ast.AST) -> bool:
    """Whether `node` contains an assert that checks something (not `assert <truthy constant>`)."""
    return any(
        isinstance(n, ast.Assert) and not (isinstance(n.test, ast.Constant) and n.test.value)
        for n in ast.walk(node)
    )


def _test_functions(module: ast.Module) -> dict[str, ast.FunctionDef]:
    """Top-level functions to wrap: they assert, are defined once, are called only as plain statements."""
    defs: dict[str, list[ast.FunctionDef]] = {}
    for stmt in module.body:
        if isinstance(stmt, ast.FunctionDef):
            defs.setdefault(stmt.name, []).append(stmt)
    candidates = {}
    for name, found in defs.items():
        fn = found[0]
        args = fn.args
        if (
            len(found) == 1
            and not fn.decorator_list
            and not (args.defaults or args.kw_defaults or args.vararg or args.kwarg or args.kwonlyargs)
            and not args.posonlyargs
            and any(_asserts(s) for s in fn.body)
            and not any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in ast.walk(fn))
        ):
            candidates[name] = fn
    # A candidate referenced anywhere except as `name(positional, ...)` statements at top level keeps its
    # original form (its callers then count as single tests).
    plain_calls: dict[str, int] = {}
    for stmt in module.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id in candidates
            and not call.keywords
            and not any(isinstance(a, ast.Starred) for a in call.args)
        ):
            plain_calls[call.func.id] = plain_calls.get(call.func.id, 0) + 1
    references: dict[str, int] = {}
    for node in ast.walk(module):
        if isinstance(node, ast.Name) and node.id in candidates:
            references[node.id] = references.get(node.id, 0) + 1
    return {
        name: fn
        for name, fn in candidates.items()
        if plain_calls.get(name, 0) >= 1 and references.get(name, 0) == plain_calls[name]
    }


def _wrap(fn: ast.FunctionDef) -> tuple[str, int]:
    """`fn` with each assert-bearing statement reporting its result; (source, number of results)."""
    body: list[ast.stmt] = []
    count = 0
    for stmt in fn.body:
        if not _asserts(stmt) or isinstance(stmt, _DEFINITIONS):
            body.append(stmt)
            continue
        report = ast.parse(
            f"try:\n    pass\nexcept {_BASE} as __selfimprove_error:\n"
            f"    {RECORD}({count}, __selfimprove_error)\nelse:\n    {RECORD}({count}, None)\n"
        ).body[0]
        assert isinstance(report, ast.Try)
        report.body = [stmt]
        body.append(report)
        count += 1
    wrapped = ast.FunctionDef(
        name=fn.name,
        args=ast.arguments(
            posonlyargs=[],
            args=fn.args.args,
            vararg=None,
            kwonlyargs=[ast.arg(RECORD), ast.arg(_BASE)],
            kw_defaults=[None, None],
            kwarg=None,
            defaults=[],
        ),
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    return ast.unparse(ast.fix_missing_locations(ast.Module(body=[wrapped], type_ignores=[]))), count


def plan_tests(tests: str) -> TestPlan:
    """Cut gold tests into units; ValueError when they do not parse or contain no assert at all."""
    try:
        module = ast.parse(tests)
    except SyntaxError as err:
        raise ValueError(f"tests do not parse: {err.msg} (line {err.lineno})") from None
    lines = tests.splitlines()
    functions = _test_functions(module)
    asserting = {s.name for s in module.body if isinstance(s, ast.FunctionDef) and _asserts(s)}
    counts: dict[str, int] = {}
    units: list[dict[str, object]] = []
    firsts: list[int] = []
    total = 0
    for stmt in module.body:
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        # Keep the original text and line numbers (blank lines above), so messages point into the tests.
        source = "\n" * (first - 1) + "\n".join(lines[first - 1 : stmt.end_lineno])
        if isinstance(stmt, ast.FunctionDef) and stmt.name in functions:
            wrapped, counts[stmt.name] = _wrap(stmt)
            units.append({"kind": "def", "name": stmt.name, "source": wrapped})
        elif (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id in functions
        ):
            args = "(" + "".join(ast.unparse(a) + ", " for a in stmt.value.args) + ")"
            name = stmt.value.func.id
            units.append({"kind": "call", "name": name, "args": args, "count": counts[name]})
            total += counts[name]
        elif not isinstance(stmt, _DEFINITIONS) and (_asserts(stmt) or _calls(stmt, asserting)):
            units.append({"kind": "assert", "source": source})
            total += 1
        else:
            units.append({"kind": "setup", "source": source})
        firsts.append(first)
    if total == 0:
        raise ValueError("tests contain no assert (a run could never fail them)")
    return TestPlan(units=tuple(units), total=total, lines=tuple(firsts))


def _calls(stmt: ast.stmt, names: set[str]) -> bool:
    """Whether a statement calls one of `names` (top-level functions of the tests that assert)."""
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
        for n in ast.walk(stmt)
    )
