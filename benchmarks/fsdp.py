"""Benchmark: FSDP vs DDP vs one process for the same training steps, side by side in one run (CPU, gloo).

`torchrun --standalone -m selfimprove.train.distributed` trains the conftest-size model (random Llama,
hidden 64, 2 layers, vocabulary 300) on the same pairs with the same global batch three ways: one process,
2 processes DDP, 2 processes `--strategy fsdp`. Rounds alternate the order of the three, so drift in the
machine's load falls on all of them. Reported per launch: the trainer's clock (tokenising, reference
log-probs and the steps), wall time including start-up, and the largest weight difference from the
one-process checkpoint of the same round.

On 2 cores, 2 processes can at best halve the time, and other jobs on the cores show up directly; on a
model this small FSDP's per-step gathers and the extra one-token sync pass are pure overhead.

    python benchmarks/fsdp.py [--pairs 256] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
RUNS = {"1 process": (1, "ddp"), "2 processes DDP": (2, "ddp"), "2 processes FSDP": (2, "fsdp")}


def build(work: Path, n_pairs: int) -> Path:
    """The conftest model (tests/conftest.py `tiny_lm_path`) and `n_pairs` apple pairs (tests/pairdata.py)."""
    from selfimprove.policy.tiny import TinyModelConfig, make_model, train_tokenizer
    from selfimprove.records import PreferencePair, write_pairs

    corpus = [
        f"Question: Tom has {a} apples and buys {b} more. How many apples does he have?\nAnswer:\n"
        f"He has {a}+{b}=<<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"
        for a in range(1, 60, 7)
        for b in range(2, 40, 5)
    ]
    config = TinyModelConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4)
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    model = make_model(config, tokenizer, seed=0)
    path = work / "model"
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    pairs = []
    for k in range(n_pairs):
        a, b = 3 + 7 * k, 2 + 5 * k
        prompt = f"Question: Tom has {a} apples and buys {b} more. How many apples does he have?\nAnswer:\n"
        pairs.append(
            PreferencePair(
                prompt, f"He has {a}+{b}={a + b} apples.\n#### {a + b}", f"He has {a}+{b}={a + b + 1}.\n"
            )
        )
    write_pairs(work / "pairs.jsonl", pairs)
    return path


def launch(work: Path, model: Path, name: str, procs: int, strategy: str, loss: str) -> dict:
    out = work / f"{loss}_{procs}_{strategy}"
    (work / f"{loss}.toml").write_text(f'loss = "{loss}"\nlr = 1e-4\nbatch_size = 32\ndevice = "cpu"\n')
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    command += ["-m", "selfimprove.train.distributed", "--pairs", str(work / "pairs.jsonl")]
    command += ["--model", str(model), "--out", str(out), "--config", str(work / f"{loss}.toml")]
    command += ["--strategy", strategy]
    start = time.perf_counter()
    subprocess.run(command, env=ENV, check=True, capture_output=True)
    wall = time.perf_counter() - start
    info = json.loads((out / "distributed.json").read_text())
    seconds = round(info["seconds"], 2)
    return {"run": name, "steps": info["steps"], "train_s": seconds, "wall_s": round(wall, 2)}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--losses", nargs="+", default=["rpo", "orpo"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build(work, args.pairs)
        for loss in args.losses:
            for round_ in range(args.rounds):
                order = list(RUNS) if round_ % 2 == 0 else list(reversed(RUNS))
                results = {name: launch(work, model, name, *RUNS[name], loss) for name in order}
                single = weights(work / f"{loss}_1_ddp")
                for name, (procs, strategy) in RUNS.items():
                    other = weights(work / f"{loss}_{procs}_{strategy}")
                    diff = max(float((other[k] - single[k]).abs().max()) for k in single)
                    row = {"loss": loss, "round": round_ + 1, **results[name], "max_weight_diff": diff}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
