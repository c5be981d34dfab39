"""Practice questions composed from knowledge-graph paths, with answers computed exactly where possible.

PRefLexOR (Buehler, 2024, https://arxiv.org/abs/2410.12375) generates its training questions from random
text chunks, and never checks the answers. Here a question is a path through the graph's formulas: a start
formula whose inputs are both stated ("total = time * rate"), then formulas each taking the previous result
as first input ("money = total - loss", "count = money / price"). Each formula is written out with the
arith generator's own building blocks (selfimprove/tasks/arith.py: the same sentence templates, number
ranges and exact integer results), so the answer is computed exactly, the solution carries true `<<a*b=c>>`
annotations, and `metadata["verified"]` is True. Formulas are drawn with weights from the curriculum (their
smoothed failure rate), so relations the policy fails on are practised more.

Formulas no template can write (from GSM8K text, or extracted by a model) give "random text chunks": the
question of a solved task that showed the formula, its numbers redrawn. Nobody can compute that answer, so
the task has answer "" and `metadata["verified"]` False: it may be searched (self-consistency) but must
never become a "chosen".

Every question is in the train split of selfimprove/tasks/splits.py (its text hashes there), so practice
never produces a held-out question.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from selfimprove.knowledge.curriculum import failure_rate
from selfimprove.tasks import arith
from selfimprove.tasks.splits import hash_split
from selfimprove.tasks.task import Task

if TYPE_CHECKING:
    from selfimprove.knowledge.graph import KnowledgeGraph

__all__ = ["practice_questions", "realisable"]

logger = logging.getLogger(__name__)

# (running kind, operation, role of the stated operand) -> (arith op, kind of its result, percent variant)
_Chain = tuple[Callable[..., Any], str, bool | None]
_CHAIN: dict[tuple[str, str, str], _Chain] = {
    ("items", "add", "gain"): (arith._items_add, "items", None),
    ("items", "subtract", "loss"): (arith._items_sub, "items", None),
    ("items", "multiply", "factor"): (arith._items_mul, "items", None),
    ("items", "multiply", "price"): (arith._items_sell, "money", None),
    ("items", "divide", "size"): (arith._items_pack, "items", None),
    ("items", "divide", "percent"): (arith._items_keep, "items", True),
    ("items", "divide", "parts"): (arith._items_keep, "items", False),
    ("money", "add", "gain"): (arith._money_add, "money", None),
    ("money", "subtract", "loss"): (arith._money_sub, "money", None),
    ("money", "multiply", "time"): (arith._money_mul, "money", None),
    ("money", "divide", "price"): (arith._money_buy, "items", None),
    ("money", "divide", "percent"): (arith._money_keep, "money", True),
    ("money", "divide", "parts"): (arith._money_keep, "money", False),
}
# first steps stating both operands in one sentence: (operation, first role, second role) -> (start, kind)
_START: dict[tuple[str, str, str], tuple[str, str]] = {
    ("multiply", "count", "size"): ("boxes", "items"),
    ("multiply", "time", "rate"): ("wage", "money"),
    ("multiply", "rate", "time"): ("savings", "money"),
    ("multiply", "count", "price"): ("sale", "money"),
    ("add", "count", "count"): ("two_days", "items"),
}
# first steps that state an amount, then act on it: first role -> (start, kind)
_OPENING = {"count": ("has_items", "items"), "money": ("has_money", "money")}
_MAX_STEP_TRIES = 20  # an arith op returns None where it cannot apply (e.g. no exact divisor): draw again


def _result_role(op: str, first: bool, kind: str) -> str:
    """The role extract.py gives the result: a first step combining by + or * yields a total."""
    if first and op in ("add", "multiply"):
        return "total"
    return "count" if kind == "items" else "money"


def _start_of(formula: dict[str, Any]) -> tuple[str, _Chain | None, str] | None:
    """(start name, chain op or None, kind after step 1) when the formula can open a problem."""
    inputs, op = formula["inputs"], formula["op"]
    if len(inputs) != 2:
        return None
    if (op, inputs[0], inputs[1]) in _START:
        name, kind = _START[(op, inputs[0], inputs[1])]
        return (name, None, kind) if formula["result"] == "total" else None
    if inputs[0] in _OPENING:
        name, kind = _OPENING[inputs[0]]
        chain = _CHAIN.get((kind, op, inputs[1]))
        if chain is not None and formula["result"] == _result_role(op, True, chain[1]):
            return name, chain, chain[1]
    return None


def _chain_of(formula: dict[str, Any], kind: str, previous_role: str) -> _Chain | None:
    """The arith op writing `formula` as a later step, after a result of `previous_role` and `kind`."""
    inputs, op = formula["inputs"], formula["op"]
    if len(inputs) != 2 or inputs[0] != previous_role:
        return None
    chain = _CHAIN.get((kind, op, inputs[1]))
    if chain is None or formula["result"] != _result_role(op, False, chain[1]):
        return None
    return chain


def realisable(formula: dict[str, Any]) -> bool:
    """Whether a template can write the formula (as a first step or after some previous result)."""
    if _start_of(formula) is not None:
        return True
    return any(
        _chain_of(formula, kind, role) for kind in ("items", "money") for role in ("total", "count", "money")
    )


def _apply(story: arith._Story, value: int, thing: arith._Thing, chain: _Chain) -> arith._Step | None:
    op, _, percent = chain
    for _ in range(_MAX_STEP_TRIES):
        step = op(story, value, thing)
        if step is not None and (percent is None or step.stated.endswith("%") == percent):
            return step
    return None


def _pick_weighted(rng: random.Random, items: list[Any], weights: list[float]) -> Any:
    return rng.choices(items, weights=weights)[0]


def _compose(
    rng: random.Random,
    formulas: dict[str, dict[str, Any]],
    weight: dict[str, float],
    starts: list[str],
    k: int,
) -> tuple[str, str, int, list[str]] | None:
    """One problem of up to k steps along a weighted random path: (question, solution, answer, formulas)."""
    first = _pick_weighted(rng, starts, [weight[f] for f in starts])
    start, chain, kind = _start_of(formulas[first])  # type: ignore[misc]
    person = arith._pick(rng, arith._PEOPLE)
    other = arith._pick(rng, arith._PEOPLE)
    while other.name == person.name:
        other = arith._pick(rng, arith._PEOPLE)
    story = arith._Story(rng, person, other)
    opening, value, thing, step = arith._STARTS[start](story)
    sentences = [opening] if opening else []
    if step is None:
        step = _apply(story, value, thing, chain) if chain is not None else None
        if step is None:
            return None
    steps, path = [step], [first]
    role = formulas[first]["result"]
    while len(steps) < k:
        value, thing = steps[-1].result, steps[-1].thing
        options = {f: c for f in formulas if (c := _chain_of(formulas[f], kind, role)) is not None}
        step = None
        while options and step is None:  # weighted, without replacement, until one applies
            name = _pick_weighted(rng, list(options), [weight[f] for f in options])
            chain = options.pop(name)
            step = _apply(story, value, thing, chain)
        if step is None:
            break
        steps.append(step)
        path.append(name)
        kind, role = chain[1], formulas[name]["result"]
    sentences += [s.sentence for s in steps]
    final = steps[-1]
    templates = arith._MONEY_QUESTIONS if final.thing is arith._DOLLARS else arith._ITEM_QUESTIONS
    ask = arith._pick(rng, templates).format(what=final.thing.plural, name=person.name, he=person.he.lower())
    question = " ".join([*sentences, ask])
    solution = "\n".join([*(arith._line(s) for s in steps), f"#### {final.result}"])
    return question, solution, final.result, path


def _exact_answer(solution: str) -> int | None:
    """The answer recomputed from the solution's own annotations, chained: each step's first operand must be
    the previous result, and every result must be an integer in 1..9,999 (arith's invariant)."""
    previous = None
    for m in re.finditer(r"<<(\d+)([-+*/])(\d+)=(\d+)>>", solution):
        a, op, b, written = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        if previous is not None and a != previous:
            return None
        value = arith.evaluate_expression(f"{a}{op}{b}")
        if value.denominator != 1 or value != written or not 1 <= value <= 9_999:
            return None
        previous = int(value)
    return previous


def _chunk(rng: random.Random, graph: KnowledgeGraph, formula: dict[str, Any]) -> tuple[str, str] | None:
    """(question, source task id): a solved question showing the formula, its integers redrawn."""
    sources = [t for t in formula["tasks"] if t in graph.solved]
    if not sources:
        return None
    source = rng.choice(sources)

    def redraw(m: re.Match[str]) -> str:
        value = int(m.group())
        return str(rng.randint(max(1, value // 2), max(2, value * 2))) if value < 10**6 else m.group()

    question = re.sub(r"(?<![\d.,])\d+(?![\d.,]\d)", redraw, graph.solved[source]["question"])
    return question, source


def practice_questions(
    graph: KnowledgeGraph, n: int, *, seed: int, min_steps: int = 1, max_steps: int = 4
) -> list[Task]:
    """`n` new practice problems from graph paths; deterministic in (graph, n, seed, min_steps, max_steps).

    Verified problems (`metadata["verified"]` True) have an exactly computed answer and a solution with
    true annotations; unverified ones (random text chunks, answer "") come from formulas no template can
    write, in proportion to those formulas' weight. Raises ValueError when the graph has no formula to
    compose from, or no path of min_steps steps.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r}; allowed: an integer >= 0")
    if not 1 <= min_steps <= max_steps <= arith.MAX_STEPS:
        raise ValueError(
            f"need 1 <= min_steps <= max_steps <= {arith.MAX_STEPS}, got {min_steps}..{max_steps}"
        )
    formulas = graph.formulas()
    weight = {f: failure_rate(d["uses"], d["correct"]) for f, d in formulas.items()}
    starts = [f for f, d in formulas.items() if _start_of(d) is not None]
    chunky = [f for f, d in formulas.items() if not realisable(d) and d["tasks"]]
    if not starts and not chunky:
        raise ValueError(
            f"the graph has no formula a practice question can be composed from ({len(formulas)} formulas)"
        )
    total = sum(weight[f] for f in starts + chunky)
    chunk_share = sum(weight[f] for f in chunky) / total
    rng = random.Random(f"selfimprove.knowledge.practice/{seed}/{min_steps}/{max_steps}")
    known = {entry["question"] for entry in graph.solved.values()}
    tasks: list[Task] = []
    attempts, max_attempts = 0, 50 * n + 200
    while len(tasks) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"composed {len(tasks)} of {n} practice questions in {max_attempts} attempts: the graph's "
                f"formulas ({len(starts)} can start a problem) do not make enough distinct "
                f"{min_steps}..{max_steps}-step problems"
            )
        task_id = f"practice-{seed}-{len(tasks):06d}"
        if chunky and (not starts or rng.random() < chunk_share):
            name = _pick_weighted(rng, chunky, [weight[f] for f in chunky])
            made = _chunk(rng, graph, formulas[name])
            if made is None or made[0] in known:
                continue
            question, source = made
            metadata = {"verified": False, "split": "train", "source": "knowledge", "formulas": [name]}
            tasks.append(Task(task_id, question, "", None, metadata={**metadata, "source_task": source}))
            known.add(question)
            continue
        composed = _compose(rng, formulas, weight, starts, rng.randint(min_steps, max_steps))
        if composed is None:
            continue
        question, solution, answer, path = composed
        if len(path) < min_steps or question in known or hash_split(question) != "train":
            continue
        # the answer is trusted only when the solution checks and recomputes to it independently
        verified = arith.solution_error(solution) is None and _exact_answer(solution) == answer
        if not verified:
            logger.warning("practice question failed its own check, skipped: %s / %s", question, solution)
            continue
        metadata = {"verified": True, "steps": len(path), "split": "train", "source": "knowledge"}
        tasks.append(Task(task_id, question, str(answer), solution, metadata={**metadata, "formulas": path}))
        known.add(question)
    return tasks
