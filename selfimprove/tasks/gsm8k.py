"""GSM8K loader: JSONL rows {"question", "answer"} whose answer ends in a `#### N` line, as Tasks.

GSM8K: Cobbe et al., "Training Verifiers to Solve Math Word Problems", 2021 (https://arxiv.org/abs/2110.14168).
The gold answer is the text after the last `####`, with thousands commas removed ("1,234" -> "1234");
the step count is the number of `<<expr=value>>` calculator annotations in the solution.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from selfimprove.io import read_jsonl
from selfimprove.tasks.task import Task

__all__ = ["load_gsm8k", "parse_gsm8k_answer"]

log = logging.getLogger(__name__)

_ANNOTATION = re.compile(r"<<[^<>]*>>")


def parse_gsm8k_answer(answer: str) -> str | None:
    """The final answer after the last `####`, commas removed; None when there is none."""
    _, sep, tail = answer.rpartition("####")
    if not sep:
        return None
    final = tail.strip().replace(",", "")
    return final or None


def load_gsm8k(path: str | Path, *, split_name: str | None = None) -> list[Task]:
    """Every row of a GSM8K-format JSONL file as a Task, in file order.

    Ids are `gsm8k-{split_name or file stem}-{row index:05d}`. Raises ValueError naming the file and line
    for a malformed line, a missing or non-string `question`/`answer`, or an answer without `#### N`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"GSM8K file {path} does not exist (expected JSONL with 'question' and 'answer')")
    name = split_name or path.stem
    tasks: list[Task] = []
    for lineno, row in read_jsonl(path):
        for key in ("question", "answer"):
            if key not in row:
                raise ValueError(f"{path}:{lineno}: missing field {key!r} (fields present: {sorted(row)})")
            if not isinstance(row[key], str):
                raise ValueError(
                    f"{path}:{lineno}: field {key!r} must be a string, got {type(row[key]).__name__}"
                )
        final = parse_gsm8k_answer(row["answer"])
        if final is None:
            raise ValueError(f"{path}:{lineno}: field 'answer' has no final '#### N' line")
        tasks.append(
            Task(
                id=f"gsm8k-{name}-{len(tasks):05d}",
                question=row["question"].strip(),
                answer=final,
                solution=row["answer"],
                metadata={
                    "steps": len(_ANNOTATION.findall(row["answer"])),
                    "split": name,
                    "line": lineno,
                    "source": str(path),
                },
            )
        )
    log.info("loaded %d GSM8K tasks from %s", len(tasks), path)
    return tasks
