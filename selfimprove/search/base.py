"""The Search protocol: given a policy, a verifier, tasks and a budget, return trees, pairs and samples.

Every search (MCTS, best-of-n, PRefLexOR) returns the same `SearchResult`, so the loop, the run folder and
the viewer treat them alike. Searches are pure calls: the trees live inside the call and are returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from selfimprove.policy.base import Policy
from selfimprove.records import PreferencePair
from selfimprove.tasks.task import Task
from selfimprove.verify.base import Verifier


@dataclass(frozen=True)
class Sample:
    """A complete solution the search generated and the verifier judged (for RFT and full-solution pairs)."""

    task_id: str
    prompt: str
    completion: str
    correct: bool
    num_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "prompt": self.prompt,
            "completion": self.completion,
            "correct": self.correct,
            "num_tokens": self.num_tokens,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Sample:
        return cls(
            task_id=str(row["task_id"]),
            prompt=str(row["prompt"]),
            completion=str(row["completion"]),
            correct=bool(row["correct"]),
            num_tokens=int(row["num_tokens"]),
        )


@dataclass(frozen=True)
class SearchResult:
    """`trees`: one JSON-ready dict per task (same schema for every search); `stats` flat, namespaced.

    `artifacts`: state a search carries to its next iteration (PRefLexOR's knowledge graph), by name; each
    value has `save(path)`, and the loop saves it as `<name>.json` in the iteration folder.
    """

    trees: list[dict[str, Any]]
    pairs: list[PreferencePair]
    samples: list[Sample]
    stats: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


# Called as progress(tasks_done, tasks_total, stats) after each batch of work.
SearchProgress = Callable[[int, int, dict[str, float]], None]


class Search(Protocol):
    def run(
        self,
        policy: Policy,
        verifier: Verifier,
        tasks: Sequence[Task],
        prompt_fn: Callable[[Task], str],
        *,
        seed: int,
        token_budget: int | None = None,
        progress: SearchProgress | None = None,
    ) -> SearchResult:
        """Search every task (or until `token_budget` generated tokens are spent, at task granularity)."""
        ...
