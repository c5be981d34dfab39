"""Data-parallel training under torchrun on CPU (2 gloo processes) equals one process on the same global
batch: the same weights after N steps (float tolerance) and the same logged metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pairdata import apple_pairs
from safetensors.torch import load_file

from selfimprove.records import write_pairs
from selfimprove.train.checkpoint import read_state
from selfimprove.train.config import SFTConfig, TrainConfig
from selfimprove.train.distributed import DataParallel
from selfimprove.train.sft import train_sft
from selfimprove.train.trainer import train_preference

# 11 pairs at 4 per step: steps of 4, 4 and 3 rows, so in the last step one rank trains on 1 row and the
# other on 2 (and with 9 rows of SFT at 4 per step, one rank gets no row at all in the 1-row step)
CONFIG = {"lr": 1e-3, "batch_size": 4, "warmup_frac": 0.0, "device": "cpu", "epochs": 2, "weight_decay": 0.1}


def _torchrun(args: list[str], tmp_path: Path) -> None:
    """`torchrun --standalone --nproc-per-node 2 -m selfimprove.train.distributed ARGS` on CPU."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "selfimprove.train.distributed", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def _toml(values: dict, path: Path) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _assert_same_training(single_model, single_metrics, out: Path) -> None:
    distributed = load_file(out / "model.safetensors")
    expected = {k: v.detach() for k, v in single_model.state_dict().items()}
    assert set(distributed) <= set(expected)
    moved = 0.0
    for name, weight in distributed.items():
        # Adam divides each gradient entry by its own scale: float noise in near-zero entries can move a
        # weight by a small fraction of lr (1e-3); 1e-5 is 1% of one step
        assert torch.allclose(weight, expected[name], atol=1e-5), name
        moved = max(moved, float((weight - expected[name]).abs().max()))
    history = read_state(out)["log_history"]
    assert len(history) == len(single_metrics)
    for got, want in zip(history, single_metrics, strict=True):
        assert got["train/loss"] == pytest.approx(want["train/loss"], abs=1e-6)
        assert got["train/grad_norm"] == pytest.approx(want["train/grad_norm"], rel=1e-4)
        assert got["train/tokens"] == want["train/tokens"]
    info = json.loads((out / "distributed.json").read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo"


def test_two_gloo_processes_equal_one_process_preference(tiny_lm_path, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = apple_pairs(11)
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    values = {**CONFIG, "loss": "rpo"}
    _torchrun(
        [
            "--pairs",
            "pairs.jsonl",
            "--model",
            str(tiny_lm_path),
            "--out",
            "ddp",
            "--config",
            str(_toml(values, tmp_path / "c.toml")),
        ],
        tmp_path,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_preference(
        model, AutoTokenizer.from_pretrained(tiny_lm_path), pairs, TrainConfig(**values)
    )
    assert result.steps == 6
    assert max(float((model.state_dict()[k] - before[k]).abs().max()) for k in before) > 1e-3  # it trained
    _assert_same_training(model, result.metrics, tmp_path / "ddp")


@pytest.mark.slow  # another ~18 s torchrun launch; the preference test above covers the same engine path
def test_two_gloo_processes_equal_one_process_sft(tiny_lm_path, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples = [(p.prompt, p.chosen) for p in apple_pairs(9)]
    rows = [{"prompt": p, "completion": c, "correct": True} for p, c in examples]
    rows.append({"prompt": "ignored", "completion": "an incorrect sample", "correct": False})
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _torchrun(
        [
            "--examples",
            "samples.jsonl",
            "--model",
            str(tiny_lm_path),
            "--out",
            "ddp",
            "--config",
            str(_toml(CONFIG, tmp_path / "c.toml")),
        ],
        tmp_path,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    result = train_sft(model, AutoTokenizer.from_pretrained(tiny_lm_path), examples, SFTConfig(**CONFIG))
    assert result.steps == 6
    _assert_same_training(model, result.metrics, tmp_path / "ddp")


def test_shards_cover_each_step_once() -> None:
    step = [[7, 3, 9, 1], [4, 8, 2]]
    shards = [DataParallel(rank, 3).shard(step, batch_size=2) for rank in range(3)]
    assert shards == [[[7, 1], [2]], [[3, 4]], [[9, 8]]]
    assert sorted(i for shard in shards for micro in shard for i in micro) == sorted(
        i for m in step for i in m
    )
    assert DataParallel(1, 2).shard([[5]], batch_size=4) == []
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        DataParallel(2, 2)
