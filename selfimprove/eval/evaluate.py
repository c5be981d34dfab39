"""Held-out evaluation of a policy on a task recipe: greedy accuracy, maj@k and pass@k per step count.

For every held-out task the policy answers once greedily (temperature 0) and k times by sampling; the
recipe's verifier judges each answer. Greedy accuracy is the fraction of greedy answers judged correct;
maj@k answers with the majority of the k sampled answers (metrics.majority_vote); pass@k is the unbiased
estimator of Chen et al. 2021 (metrics.pass_at_k), here with n = k samples, and pass@1 = mean sample
accuracy. Every metric is reported overall and per step count (the difficulty knob), next to the tokens
generated and the seconds taken. `EvalReport` is what the loop writes as eval.json.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from selfimprove.eval.metrics import majority_vote, pass_at_k
from selfimprove.policy.base import Completion, Policy
from selfimprove.tasks.recipe import TaskRecipe, format_prompt, load_recipe, load_tasks
from selfimprove.tasks.task import Task
from selfimprove.verify.base import Verdict, Verifier
from selfimprove.verify.registry import make_verifier

__all__ = ["EvalReport", "GroupMetrics", "TaskRecord", "evaluate"]

logger = logging.getLogger(__name__)

# Rows (prompt x sample) per generate call: small enough for a progress bar to move, large enough that
# the policy still fills its batches (it splits each call into batches that fit memory).
_ROWS_PER_CALL = 512

ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TaskRecord:
    """One held-out task's outcome: the greedy answer, and how many of the k samples were correct."""

    task_id: str
    steps: int | None
    greedy_correct: bool
    greedy_answer: str | None
    num_correct: int  # of num_samples sampled completions
    num_samples: int
    majority_correct: bool | None  # None when no samples were drawn (k = 0)
    tokens: int  # generated for this task, greedy and sampled


@dataclass(frozen=True)
class GroupMetrics:
    """Accuracy over a group of tasks (all of them, or one step count); sample metrics None when k = 0."""

    steps: int | None  # None for the whole set
    n: int
    greedy: float
    maj_at_k: float | None
    pass_at_k: float | None
    pass_at_1: float | None  # mean accuracy of single samples at the sampling temperature
    tokens: int


@dataclass(frozen=True)
class EvalReport:
    """The result of `evaluate`: settings, metrics overall and per step count, and every task's record."""

    recipe: str
    k: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    overall: GroupMetrics
    by_steps: tuple[GroupMetrics, ...]
    tokens: int
    seconds: float
    records: tuple[TaskRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain dicts and lists."""
        return {
            "recipe": self.recipe,
            "k": self.k,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "overall": asdict(self.overall),
            "by_steps": [asdict(group) for group in self.by_steps],
            "tokens": self.tokens,
            "seconds": self.seconds,
            "records": [asdict(record) for record in self.records],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        """Inverse of `to_dict`; a missing or unknown field raises ValueError naming it."""
        try:
            return cls(
                recipe=str(data["recipe"]),
                k=int(data["k"]),
                temperature=float(data["temperature"]),
                top_p=float(data["top_p"]),
                max_new_tokens=int(data["max_new_tokens"]),
                seed=int(data["seed"]),
                overall=GroupMetrics(**data["overall"]),
                by_steps=tuple(GroupMetrics(**group) for group in data["by_steps"]),
                tokens=int(data["tokens"]),
                seconds=float(data["seconds"]),
                records=tuple(TaskRecord(**record) for record in data["records"]),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not an eval report ({type(err).__name__}: {err})") from None


def _group(records: Sequence[TaskRecord], steps: int | None, k: int) -> GroupMetrics:
    n = len(records)

    def mean(values: Sequence[float]) -> float:
        return sum(values) / n if n else 0.0

    sampled = k > 0
    return GroupMetrics(
        steps=steps,
        n=n,
        greedy=mean([r.greedy_correct for r in records]),
        maj_at_k=mean([bool(r.majority_correct) for r in records]) if sampled else None,
        pass_at_k=mean([pass_at_k(r.num_samples, r.num_correct, k) for r in records]) if sampled else None,
        pass_at_1=mean([r.num_correct / r.num_samples for r in records]) if sampled else None,
        tokens=sum(r.tokens for r in records),
    )


def _generate_all(
    policy: Policy,
    prompts: list[str],
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    advance: Callable[[int], None],
) -> list[list[Completion]]:
    """`policy.generate` over all prompts in calls of about _ROWS_PER_CALL rows, each call seeded."""
    per_call = max(1, _ROWS_PER_CALL // n)
    seeds = random.Random(seed)
    out: list[list[Completion]] = []
    for start in range(0, len(prompts), per_call):
        chunk = prompts[start : start + per_call]
        out += policy.generate(
            chunk,
            n=n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seeds.getrandbits(63),
        )
        advance(len(chunk) * n)
    return out


def evaluate(
    policy: Policy,
    recipe: TaskRecipe | str,
    *,
    n: int = 200,
    k: int = 8,
    temperature: float = 0.8,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    seed: int = 0,
    steps: Sequence[int] | None = None,
    verifier: Verifier | None = None,
    progress: ProgressFn | None = None,
    split: str = "test",
) -> EvalReport:
    """Evaluate `policy` on `n` held-out tasks per step count (`steps`, default the recipe's eval_steps).

    Tasks come from the recipe's `split` ("test", the held-out one, unless a caller choosing settings asks
    for "val") with `seed`; sampling is seeded from `seed` too, so the same call on the same policy gives
    the same report. `progress(done, total, info)` is called as
    completions are generated (total = tasks x (1 + k)). Generation ends at the end token.
    """
    if isinstance(recipe, str):
        recipe = load_recipe(recipe)
    if n < 1:
        raise ValueError(f"n must be >= 1 tasks per step count, got {n}")
    if k < 0:
        raise ValueError(f"k must be >= 0 samples per task (0 skips sampling), got {k}")
    if not temperature > 0 and k > 0:
        raise ValueError(f"sampling needs temperature > 0, got {temperature}; use k=0 for greedy only")
    verifier = verifier or make_verifier(recipe.verifier)
    start = time.perf_counter()

    # 1. held-out tasks: n per step count
    step_counts = list(steps or recipe.eval_steps)
    tasks: list[Task] = []
    for count in step_counts:
        tasks += load_tasks(recipe, split, n, steps=count, seed=seed)
    prompts = [format_prompt(recipe, task) for task in tasks]
    logger.info("evaluating on %d %s tasks (step counts %s), k=%d", len(tasks), recipe.name, step_counts, k)

    # 2. greedy answers and k samples per task, in batched generate calls
    total, done = len(tasks) * (1 + k), 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress(done, total, {"seconds": time.perf_counter() - start})

    settings = {"max_new_tokens": max_new_tokens, "advance": advance}
    greedy = _generate_all(policy, prompts, n=1, temperature=0.0, top_p=1.0, seed=seed, **settings)
    samples: list[list[Completion]] = [[] for _ in tasks]
    if k > 0:
        samples = _generate_all(
            policy, prompts, n=k, temperature=temperature, top_p=top_p, seed=seed, **settings
        )

    # 3. verify, vote and count
    records = []
    for task, (first,), sampled in zip(tasks, greedy, samples, strict=True):
        greedy_verdict = verifier.check(task, first.text)
        verdicts = [verifier.check(task, c.text) for c in sampled]
        answers = [v.predicted for v in verdicts]
        majority = majority_vote(answers)
        records.append(
            TaskRecord(
                task_id=task.id,
                steps=task.steps,
                greedy_correct=greedy_verdict.correct,
                greedy_answer=greedy_verdict.predicted,
                num_correct=sum(v.correct for v in verdicts),
                num_samples=len(verdicts),
                majority_correct=_majority_correct(verdicts, answers, majority, sampled=k > 0),
                tokens=first.num_tokens + sum(c.num_tokens for c in sampled),
            )
        )
    by_steps = tuple(
        _group([r for r, task in zip(records, tasks, strict=True) if task.steps == count], count, k)
        for count in step_counts
    )
    return EvalReport(
        recipe=recipe.name,
        k=k,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        overall=_group(records, None, k),
        by_steps=by_steps,
        tokens=sum(r.tokens for r in records),
        seconds=time.perf_counter() - start,
        records=tuple(records),
    )


def _majority_correct(
    verdicts: Sequence[Verdict], answers: Sequence[str | None], majority: str | None, *, sampled: bool
) -> bool | None:
    """Whether the majority answer is right: None without samples; wrong when no sample gave an answer.

    The majority answer is one of the answers, so that sample's own verdict says whether it is right.
    """
    if not sampled:
        return None
    return majority is not None and verdicts[answers.index(majority)].correct
