"""Benchmark: what the scale-out paths cost next to their single-process counterparts, in one run.

1. HTTP: `selfimprove serve` + the OpenAI client versus the in-process transformers backend, on the same
   generate calls (greedy and sampled); the difference is the price of the HTTP path (JSON, per-token
   log-probs rescored by the server).
2. Data-parallel training: `torchrun --nproc-per-node 2` versus `--nproc-per-node 1` on the same pairs
   and global batch (training seconds as each run's trainer reports them, plus wall time with start-up).
3. Ray search: a pool of 2 workers versus the single-process MCTS on the same tasks and seed (wall time of
   the whole call, worker start-up included), checked to give the same trees.

On a 2-core machine two processes can at best halve the time, and any other load on the cores shows up
directly; the figures say what the paths cost here, not what they gain on many GPUs.

    python benchmarks/scale_out.py [--part serve|ddp|ray|all]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from selfimprove.policy.hf import HFPolicy
from selfimprove.policy.tiny import build_tiny_model
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def serve_part(model: Path, prompts: list[str]) -> dict:
    from selfimprove.policy.openai_client import OpenAICompletionsPolicy

    command = [sys.executable, "-m", "selfimprove.cli", "serve", "--model", str(model), "--port", "0"]
    command += ["--device", "cpu", "--threads", "1", "--name", "m"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        url = server.stdout.readline().split()[2]
        local = HFPolicy.from_pretrained(model, device="cpu")
        client = OpenAICompletionsPolicy(url, "m", tokenizer=model)
        out = {}
        for name, kwargs in {
            "greedy": {"n": 1, "max_new_tokens": 96, "temperature": 0.0, "stop": ("####",), "seed": 0},
            "sampled": {"n": 4, "max_new_tokens": 96, "temperature": 1.0, "seed": 1},
        }.items():
            times: dict[str, list[float]] = {"in_process": [], "http": []}
            for _ in range(3):
                for label, policy in (("in_process", local), ("http", client)):
                    start = time.perf_counter()
                    groups = policy.generate(prompts, **kwargs)
                    times[label].append(time.perf_counter() - start)
                    if label == "in_process":
                        expected = groups
                    else:
                        assert [[c.text for c in g] for g in groups] == [
                            [c.text for c in g] for g in expected
                        ]
            tokens = sum(c.num_tokens for g in expected for c in g)
            median = {k: statistics.median(v) for k, v in times.items()}
            out[name] = {
                "prompts": len(prompts),
                "tokens": tokens,
                "in_process_s": round(median["in_process"], 3),
                "http_s": round(median["http"], 3),
                "http_over_in_process": round(median["http"] / median["in_process"], 3),
            }
        return out
    finally:
        server.terminate()
        server.wait()


def ddp_part(model: Path, work: Path) -> dict:
    from selfimprove.records import PreferencePair, write_pairs

    recipe = load_recipe("arith")
    tasks = load_tasks(recipe, "train", 256, seed=3, steps=2)
    pairs = [
        PreferencePair(format_prompt(recipe, t), t.solution or "", "He has 3 apples.\n#### 3") for t in tasks
    ]
    write_pairs(work / "pairs.jsonl", pairs)
    (work / "c.toml").write_text('loss = "rpo"\nlr = 1e-4\nbatch_size = 32\ndevice = "cpu"\n')
    out = {}
    for procs in (1, 2):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
        command += ["-m", "selfimprove.train.distributed", "--pairs", str(work / "pairs.jsonl")]
        command += [
            "--model",
            str(model),
            "--out",
            str(work / f"ddp{procs}"),
            "--config",
            str(work / "c.toml"),
        ]
        start = time.perf_counter()
        subprocess.run(command, env=ENV, check=True, capture_output=True)
        wall = time.perf_counter() - start
        info = json.loads((work / f"ddp{procs}" / "distributed.json").read_text())
        out[f"{procs}_process"] = {
            "steps": info["steps"],
            "train_s": round(info["seconds"], 2),
            "wall_s": round(wall, 2),
        }
    out["train_speedup"] = round(out["1_process"]["train_s"] / out["2_process"]["train_s"], 2)
    return out


def ray_part(model: Path, work: Path) -> dict:
    import ray

    from selfimprove.policy.backends import PolicySpec
    from selfimprove.search.mcts import MCTS, MCTSConfig
    from selfimprove.search.ray_pool import RaySearchPool
    from selfimprove.verify.registry import make_verifier

    recipe = load_recipe("arith")
    tasks = load_tasks(recipe, "train", 32, seed=0, steps=2)
    search = MCTS(MCTSConfig(simulations=8, children=3, rollouts=2, trees_per_batch=8, max_rollout_tokens=96))
    prompt_fn = lambda task: format_prompt(recipe, task)  # noqa: E731
    start = time.perf_counter()
    single = search.run(
        HFPolicy.from_pretrained(model, device="cpu"), make_verifier("math"), tasks, prompt_fn, seed=0
    )
    single_s = time.perf_counter() - start
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = RaySearchPool(PolicySpec(path=str(model), device="cpu"), search, workers=2)
        start = time.perf_counter()
        result = pool.run(tasks, prompt_fn, "math", seed=0, out_dir=work / "ray")
        pool_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    return {
        "tasks": len(tasks),
        "tokens": single.stats["search/tokens"],
        "same_trees": json.dumps(result.trees) == json.dumps(single.trees),
        "single_process_s": round(single_s, 2),
        "ray_2_workers_s": round(pool_s, 2),
        "speedup": round(single_s / pool_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("serve", "ddp", "ray", "all"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = build_tiny_model("test")
    recipe = load_recipe("arith")
    prompts = [format_prompt(recipe, t) for t in load_tasks(recipe, "test", 32, seed=0, steps=2)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.part in ("serve", "all"):
            results["serve"] = serve_part(model, prompts)
            print(json.dumps({"serve": results["serve"]}), flush=True)
        if args.part in ("ddp", "all"):
            results["ddp"] = ddp_part(model, work)
            print(json.dumps({"ddp": results["ddp"]}), flush=True)
        if args.part in ("ray", "all"):
            results["ray"] = ray_part(model, work)
            print(json.dumps({"ray": results["ray"]}), flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
