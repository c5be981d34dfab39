"""The Verifier protocol: an exact judge of a completion against a task's gold answer or tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from selfimprove.tasks.task import Task


@dataclass(frozen=True)
class Verdict:
    """`correct` is the binary outcome; `score` in [0, 1] (1.0/0.0 for math, fraction of tests for code)."""

    correct: bool
    score: float
    predicted: str | None = None
    detail: str = ""


class Verifier(Protocol):
    def check(self, task: Task, completion: str) -> Verdict:
        """Judge `completion` (the whole solution text after the prompt). Never raises on model output."""
        ...


@runtime_checkable
class StepVerifier(Protocol):
    """A verifier that can also prove an unfinished solution wrong (a search prunes such steps at once)."""

    def check_prefix(self, task: Task, text: str) -> Verdict | None:
        """A failing verdict when `text` (one or more finished steps) is already wrong, else None."""
        ...
