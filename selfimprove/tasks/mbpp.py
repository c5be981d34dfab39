"""MBPP loader: Mostly Basic Python Problems (Austin et al. 2021), as code Tasks with the standard splits.

"Program Synthesis with Large Language Models" (https://arxiv.org/abs/2108.07732). Rows of the released
`mbpp.jsonl`: text, code, task_id, test_setup_code, test_list, challenge_test_list. Splits by task id, as
the release's README and the common distributions define them: "prompt" 1-10 (few-shot examples), "test"
11-510, "val" 511-600, "train" 601-974.

The prompt states the problem and its tests as Python comments, as in the paper's prompt ("Your code should
pass these tests:"); the model writes the whole program, which runs after the comments. The tests are the
setup code then the test_list asserts (setup placed after the program, which tasks 367 and 927 need).
`challenge_test_list` is not used. MBPP has no difficulty knob: every task is in step group 1.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove.io import read_jsonl
from selfimprove.tasks.task import Task

__all__ = ["SPLITS", "load_mbpp", "mbpp_prompt", "split_of_task_id"]

SPLITS = {"prompt": (1, 10), "test": (11, 510), "val": (511, 600), "train": (601, 1000)}


def split_of_task_id(task_id: int) -> str | None:
    """The standard split of an MBPP task id, or None outside 1..1000."""
    return next((name for name, (lo, hi) in SPLITS.items() if lo <= task_id <= hi), None)


def mbpp_prompt(text: str, tests: list[str]) -> str:
    """The problem and its tests as comment lines; the completion is the program that follows."""
    lines = [*text.strip().splitlines(), "Your code should pass these tests:", *tests]
    return "".join(f"# {line}\n" for line in lines)


def load_mbpp(path: str | Path, split: str) -> list[Task]:
    """The rows of `split` ("train", "val", "test" or "prompt") in file order.

    Raises ValueError naming the file and line for a malformed line or a missing or ill-typed field.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed for MBPP: {', '.join(SPLITS)}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"MBPP file {path} does not exist (expected the released mbpp.jsonl)")
    tasks: list[Task] = []
    for lineno, row in read_jsonl(path):
        for key, kind in (("text", str), ("code", str), ("task_id", int), ("test_list", list)):
            if not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
                raise ValueError(f"{path}:{lineno}: field {key!r} missing or not {kind.__name__}")
        setup = row.get("test_setup_code", "") or ""
        if not isinstance(setup, str) or not all(isinstance(t, str) for t in row["test_list"]):
            raise ValueError(f"{path}:{lineno}: test_setup_code and test_list must hold strings")
        if split_of_task_id(row["task_id"]) != split:
            continue
        # The release uses \r\n in places; the program and the tests are plain Python either way.
        asserts = [t.replace("\r\n", "\n").strip() for t in row["test_list"]]
        setup = setup.replace("\r\n", "\n").strip()
        prompt = mbpp_prompt(row["text"], asserts)
        tasks.append(
            Task(
                id=f"mbpp-{row['task_id']:03d}",
                question=prompt,
                answer="",
                solution=row["code"].replace("\r\n", "\n"),
                kind="code",
                metadata={
                    "task_id": row["task_id"],
                    "prompt": prompt,
                    "completion": "program",
                    "tests": (setup + "\n" if setup else "") + "\n".join(asserts) + "\n",
                    "steps": 1,
                    "split": split,
                    "line": lineno,
                },
            )
        )
    return tasks
