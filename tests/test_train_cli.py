"""`selfimprove train` end to end on a small random Llama, and its errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from selfimprove.cli import main
from selfimprove.records import PreferencePair, write_pairs


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    pairs = [
        PreferencePair(
            f"Question: {a}+{a}?\nAnswer:\n", f"#### {2 * a}", f"#### {2 * a + 1}", metadata={"task_id": a}
        )
        for a in range(1, 7)
    ]
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    return tmp_path / "pairs.jsonl"


def test_train_command_trains_and_saves(tiny_lm_path: Path, pairs_file: Path, tmp_path: Path, capsys) -> None:
    from selfimprove.train.checkpoint import load_checkpoint, read_state

    out = tmp_path / "out"
    argv = ["train", "--pairs", str(pairs_file), "--model", str(tiny_lm_path), "--out", str(out)]
    argv += [
        "--loss",
        "ipo",
        "--beta",
        "0.5",
        "--lr",
        "1e-3",
        "--batch-size",
        "3",
        "--epochs",
        "2",
        "--seed",
        "3",
    ]
    argv += ["--mask-span", "<|thinking|>", "<|/thinking|>", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "after 4 steps" in printed and "rewards/accuracy" in printed and "train/kl" in printed
    state = read_state(out)
    assert state["steps"] == 4 and state["pairs"] == 6
    assert (
        state["config"]["loss"] == "ipo" and state["config"]["beta"] == 0.5 and state["config"]["seed"] == 3
    )
    assert state["config"]["mask_spans"] == [["<|thinking|>", "<|/thinking|>", 0.0]]
    assert json.loads((out / "train_command.json").read_text())["args"]["loss"] == "ipo"
    model, _ = load_checkpoint(out)
    assert model.config.vocab_size > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--beta", "-1"], "beta=-1.0"),
        (["--mask-span", "<a>", "</a>", "heavy"], "mask_spans"),
    ],
)
def test_bad_options_are_named(
    tiny_lm_path: Path, pairs_file: Path, tmp_path, capsys, extra, message
) -> None:
    argv = [
        "train",
        "--pairs",
        str(pairs_file),
        "--model",
        str(tiny_lm_path),
        "--out",
        str(tmp_path / "o"),
        *extra,
    ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_files_are_named(tiny_lm_path: Path, pairs_file: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    cases = [
        (tmp_path / "missing.jsonl", tiny_lm_path, "no such pairs file"),
        (broken, tiny_lm_path, "broken.jsonl:2: missing field(s) ['rejected']"),
        (pairs_file, tmp_path, "is not a model folder"),
    ]
    for pairs, model, message in cases:
        argv = ["train", "--pairs", str(pairs), "--model", str(model), "--out", str(tmp_path / "o")]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--pairs", str(broken), "--model", str(tiny_lm_path), "--out", "o", "--loss", "dpo"])
