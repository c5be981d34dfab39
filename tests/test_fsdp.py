"""FSDP training under torchrun on CPU (2 gloo processes, `--strategy fsdp`) equals one process on the same
global batch: the checkpoint rank 0 gathers and saves loads with from_pretrained and holds the weights of
the single-process run, which are far from the untrained ones; ranks whose steps run different numbers of
forwards (or none) do not hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pairdata import apple_pairs

from selfimprove.records import PreferencePair, write_pairs
from selfimprove.train.checkpoint import read_state
from selfimprove.train.config import SFTConfig, TrainConfig
from selfimprove.train.data import plan_epoch, tokenize_pairs
from selfimprove.train.distributed import DataParallel, main
from selfimprove.train.sft import train_sft
from selfimprove.train.trainer import train_preference

# Adam divides each gradient entry by its own running scale, so float noise in near-zero entries (the sum
# over ranks adds in another order) can move a weight by a small fraction of lr (1e-3): 1e-5 is 1% of one
# step. Training moves the weights by more than 100 times that, so saving untrained weights cannot pass.
WEIGHT_TOL = 1e-5
CONFIG = {"lr": 1e-3, "warmup_frac": 0.0, "device": "cpu", "epochs": 2, "weight_decay": 0.1}


def _torchrun(args: list[str], tmp_path: Path) -> None:
    """`torchrun --standalone --nproc-per-node 2 -m selfimprove.train.distributed ARGS --strategy fsdp`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "selfimprove.train.distributed", *args, "--strategy", "fsdp"]
    # a collective that one rank never joins hangs: the timeout turns that into a failure
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def _toml(values: dict, path: Path) -> Path:
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return path


def _assert_saved_equals_single(out: Path, single_model, single_metrics, initial: dict) -> None:
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out).state_dict()
    expected = {k: v.detach() for k, v in single_model.state_dict().items()}
    assert set(saved) == set(expected)
    for name, weight in saved.items():
        assert torch.allclose(weight, expected[name], atol=WEIGHT_TOL), name
    moved = max(float((saved[k] - initial[k]).abs().max()) for k in saved)
    assert moved > 100 * WEIGHT_TOL  # the trained weights were saved, not the ones training started from
    state = read_state(out)
    assert state["strategy"] == "fsdp"
    history = state["log_history"]
    assert len(history) == len(single_metrics)
    for got, want in zip(history, single_metrics, strict=True):
        assert got["train/loss"] == pytest.approx(want["train/loss"], abs=1e-6)
        assert got["train/grad_norm"] == pytest.approx(want["train/grad_norm"], rel=1e-4)
        assert got["train/tokens"] == want["train/tokens"]
    info = json.loads((out / "distributed.json").read_text())
    assert (info["world_size"], info["backend"], info["strategy"]) == (2, "gloo", "fsdp")


def _forwards_per_micro_batch(pairs, tokenizer, config: TrainConfig) -> list[list[list[int]]]:
    """Per step, per rank: how many forwards each of the rank's micro-batches runs (shared-prompt path:
    two, or one when every completion of the micro-batch is a single token), as the engine plans them."""
    items = tokenize_pairs(tokenizer, pairs, max_length=config.max_length, mask_spans=config.mask_spans)
    lengths = [len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in items]
    generator = torch.Generator().manual_seed(config.seed)
    out = []
    for _ in range(config.epochs):
        for step in plan_epoch(
            lengths, batch_size=config.batch_size, grad_accum=config.grad_accum, generator=generator
        ):
            shards = [DataParallel(rank, 2).shard(step, config.batch_size) for rank in range(2)]
            out.append(
                [[1 if all(_one_token(items[i]) for i in m) else 2 for m in shard] for shard in shards]
            )
    return out


def _one_token(item) -> bool:
    return len(item.chosen_ids) == len(item.rejected_ids) == 1


def test_fsdp_two_gloo_processes_equal_one_process_preference(tiny_lm_path, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    # a pair whose completions are one token each runs one forward on the shared-prompt path, the others two
    one_token = PreferencePair(
        apple_pairs(2)[1].prompt + "He has 10+7=17 apples.\nThe last digit is ",
        "7",
        "8",
        chosen_eos=False,
        rejected_eos=False,
    )
    pairs = [*apple_pairs(9), one_token]
    values = {**CONFIG, "loss": "rpo", "batch_size": 1, "grad_accum": 3, "share_prompt": "always"}
    config = TrainConfig(**values)
    plan = _forwards_per_micro_batch(pairs, tokenizer, config)
    # 10 pairs at 3 per step: a 1-row step leaves rank 1 without rows, and in some step the ranks'
    # micro-batches run different numbers of forwards, so per-forward collectives would not pair up
    assert any(not rank1 for _, rank1 in plan)
    assert any(a != b for rank0, rank1 in plan for a, b in zip(rank0, rank1, strict=False))

    write_pairs(tmp_path / "pairs.jsonl", pairs)
    config_path = _toml(values, tmp_path / "c.toml")
    _torchrun(
        [
            "--pairs",
            "pairs.jsonl",
            "--model",
            str(tiny_lm_path),
            "--out",
            "fsdp",
            "--config",
            str(config_path),
        ],
        tmp_path,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_preference(model, tokenizer, pairs, config)
    assert result.steps == len(plan) == 8
    _assert_saved_equals_single(tmp_path / "fsdp", model, result.metrics, initial)


@pytest.mark.slow  # another ~15 s torchrun launch; the preference test covers the same engine path
def test_fsdp_two_gloo_processes_equal_one_process_sft(tiny_lm_path, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # 9 examples at 4 per step: steps of 4, 4 and 1 rows; in the 1-row step rank 1 has none
    examples = [(p.prompt, p.chosen) for p in apple_pairs(9)]
    rows = [{"prompt": p, "completion": c} for p, c in examples]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    values = {**CONFIG, "batch_size": 2, "grad_accum": 2}
    args = ["--examples", "samples.jsonl", "--model", str(tiny_lm_path), "--out", "fsdp"]
    _torchrun([*args, "--config", str(_toml(values, tmp_path / "c.toml"))], tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_sft(model, AutoTokenizer.from_pretrained(tiny_lm_path), examples, SFTConfig(**values))
    assert result.steps == 6
    _assert_saved_equals_single(tmp_path / "fsdp", model, result.metrics, initial)


def test_fsdp_refuses_lora_and_needs_a_process_group(tiny_lm_path, tmp_path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    from selfimprove.train.fsdp import ShardedDataParallel, shard_model

    write_pairs(tmp_path / "pairs.jsonl", apple_pairs(2))
    args = [
        "--pairs",
        str(tmp_path / "pairs.jsonl"),
        "--model",
        str(tiny_lm_path),
        "--out",
        str(tmp_path / "o"),
    ]
    args += ["--config", str(_toml({"lora": True}, tmp_path / "c.toml")), "--strategy", "fsdp"]
    assert main(args) == 2
    assert "--strategy fsdp trains every parameter" in capsys.readouterr().err
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    with pytest.raises(ValueError, match=r"needs an initialised torch\.distributed process group"):
        shard_model(model)
    with pytest.raises(ValueError, match="must be sharded with shard_model"):
        ShardedDataParallel(DataParallel(0, 2), model)
