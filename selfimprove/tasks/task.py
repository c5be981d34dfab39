"""The Task record: one problem with its gold answer, shared by every search, verifier and eval."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Task:
    """One problem.

    `answer` is the gold final answer as a string ("18", "3/4"); `solution` is the gold worked
    solution when the source has one (GSM8K format: one step per line, then `#### N`). Searches never
    show `solution` to the policy; it exists for supervised warm starts and for inspection.
    `metadata` holds source-specific facts, e.g. {"steps": 3, "split": "test", "line": 12}.
    """

    id: str
    question: str
    answer: str
    solution: str | None = None
    kind: str = "math"  # "math" or "code": picks the verifier
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def steps(self) -> int | None:
        """The difficulty knob: the number of arithmetic steps of the gold solution, if known."""
        steps = self.metadata.get("steps")
        return int(steps) if steps is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "solution": self.solution,
            "kind": self.kind,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Task:
        return cls(
            id=str(row["id"]),
            question=str(row["question"]),
            answer=str(row["answer"]),
            solution=row.get("solution"),
            kind=str(row.get("kind", "math")),
            metadata=dict(row.get("metadata") or {}),
        )
