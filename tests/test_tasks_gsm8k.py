"""The GSM8K loader: every real test row, and errors that name the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.tasks.gsm8k import load_gsm8k, parse_gsm8k_answer

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(not (GSM8K / "test.jsonl").is_file(), reason=f"GSM8K data not at {GSM8K}")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(question: str = "Q?", answer: str = "1+1=<<1+1=2>>2\n#### 2") -> str:
    return json.dumps({"question": question, "answer": answer})


@needs_gsm8k
def test_all_gsm8k_test_rows_load_with_their_final_answer() -> None:
    tasks = load_gsm8k(GSM8K / "test.jsonl", split_name="test")
    raw = [json.loads(line) for line in (GSM8K / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(tasks) == len(raw) == 1319
    for task, row in zip(tasks, raw, strict=True):
        assert task.answer == row["answer"].split("####")[-1].strip().replace(",", "")
        assert task.answer.lstrip("-").isdigit()  # GSM8K answers are integers
        assert task.solution == row["answer"] and task.question == row["question"].strip()
        assert task.steps == row["answer"].count("<<")
    assert tasks[0].id == "gsm8k-test-00000" and tasks[0].answer == "18" and tasks[0].steps == 2
    assert tasks[0].metadata["line"] == 1 and tasks[-1].metadata["line"] == 1319
    assert sum(t.steps == 3 for t in tasks) == 364  # the most common step count in the test split


@needs_gsm8k
def test_gsm8k_train_rows_load() -> None:
    tasks = load_gsm8k(GSM8K / "train.jsonl")
    assert len(tasks) == 7473 and tasks[0].id == "gsm8k-train-00000"


def test_answer_commas_removed_and_annotations_counted(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mini.jsonl",
        [_row("A?", "10*100=<<10*100=1000>>1000\n1000+234=<<1000+234=1234>>1234\n#### 1,234"), "", _row()],
    )
    first, second = load_gsm8k(path)
    assert (first.answer, first.steps, first.metadata["line"], first.id) == ("1234", 2, 1, "gsm8k-mini-00000")
    assert (second.answer, second.steps, second.metadata["line"]) == ("2", 1, 3)  # blank line 2 is skipped
    assert second.id == "gsm8k-mini-00001"
    assert parse_gsm8k_answer("x #### 5 ") == "5" and parse_gsm8k_answer("no marker") is None


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [_row(), '{"question": "Q?", "answer": '])
    with pytest.raises(ValueError, match=rf"{path}:2: malformed JSON"):
        load_gsm8k(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (json.dumps({"question": "Q?"}), "missing field 'answer'"),
        (json.dumps({"answer": "#### 1"}), "missing field 'question'"),
        (json.dumps({"question": "Q?", "answer": "It is 4."}), "field 'answer' has no final '#### N' line"),
        (json.dumps({"question": "Q?", "answer": "4\n####  "}), "field 'answer' has no final '#### N' line"),
        (json.dumps({"question": 7, "answer": "#### 7"}), "field 'question' must be a string, got int"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_row_names_field_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "rows.jsonl", [_row(), _row(), line])
    with pytest.raises(ValueError) as err:
        load_gsm8k(path)
    assert str(err.value).startswith(f"{path}:3: ") and message in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.jsonl does not exist"):
        load_gsm8k(tmp_path / "nope.jsonl")
