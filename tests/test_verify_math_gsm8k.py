"""The math verifier on real GSM8K data: every test answer extracts, and judgments match human labels.

Data: openai/grade-school-math (Cobbe et al., 2021), in ../shared/data/gsm8k beside the repository, or the
folder named by SELFIMPROVE_GSM8K_DIR.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from selfimprove.verify.math import extract_answer, is_equivalent

GSM8K_DIR = Path(
    os.environ.get("SELFIMPROVE_GSM8K_DIR", Path(__file__).resolve().parents[2] / "shared/data/gsm8k")
)
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def _rows(name: str) -> list[dict]:
    path = GSM8K_DIR / name
    if not path.exists():
        pytest.skip(f"GSM8K data not found at {path} (set SELFIMPROVE_GSM8K_DIR)")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_every_gsm8k_test_answer_extracts_to_its_hash_value() -> None:
    rows = _rows("test.jsonl")
    assert len(rows) == 1319
    mismatches = []
    for row in rows:
        expected = re.findall(r"####(.*)", row["answer"])[-1].strip().replace(",", "")
        got = extract_answer(row["answer"])
        if got != expected:
            mismatches.append((expected, got))
    assert mismatches == []


def test_judgments_agree_with_labels_on_example_model_solutions() -> None:
    rows = _rows("example_model_solutions.jsonl")
    judged, disagreements = 0, []
    for row in rows:
        gold = extract_answer(row["ground_truth"])
        assert gold is not None
        for model in MODELS:
            solution, label = row[model]["solution"], row[model]["is_correct"]
            pred = extract_answer(solution)
            verdict = pred is not None and is_equivalent(pred, gold)
            judged += 1
            if verdict != label:
                disagreements.append((model, label, pred, gold, solution[-120:]))
    assert judged == 5276
    for disagreement in disagreements:
        print("disagreement:", disagreement)
    assert 1 - len(disagreements) / judged >= 0.999, disagreements[:20]
