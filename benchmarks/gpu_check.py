"""GPU check: the transformers backend in bf16, a preference-training step, and the vLLM backend (if
installed) on one CUDA GPU, in a few minutes and without downloads. Run through benchmarks/gpu_check.sh.

Everything runs on one model: the user's (`--model PATH`, a local save_pretrained folder) or a randomly
initialised Llama of ~100M parameters with a tokenizer trained here on generated problems (random weights
generate noise, which is fine for speed and for agreement between engines). Printed, and written as JSON
with --out: what ran, on which device, and its figures.

1. transformers backend, bf16: 64 prompts x 4 samples x 128 new tokens, seeded; tokens/s and peak memory;
   the same call again must return the same samples.
2. training: RPO preference steps in bf16 autocast on pairs made from those samples; steps/s, tokens/s,
   peak memory; the checkpoint is saved for step 3.
3. vLLM backend: the same generate call (tokens/s, ratio to step 1, same process, same GPU); its log-probs
   of given completions against the transformers backend's; new weights by "reload" (the checkpoint of
   step 2) and "in_place" (the trained model's tensors), each timed and checked by scoring.

    python benchmarks/gpu_check.py [--model PATH] [--out gpu_check.json]
    python benchmarks/gpu_check.py --cpu     # a dry run of the script itself on a CPU (small model, fp32)
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch

from selfimprove.policy.hf import HFPolicy
from selfimprove.records import PreferencePair
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks
from selfimprove.train.config import TrainConfig
from selfimprove.train.trainer import train_preference

PROMPTS, SAMPLES, NEW_TOKENS = 64, 4, 128


def build_model(folder: Path, *, small: bool) -> Path:
    """A random Llama (head size 64, which every vLLM attention backend supports) and its tokenizer."""
    from selfimprove.policy.tiny import TinyModelConfig, make_model, train_tokenizer

    recipe = load_recipe("arith")
    texts = [format_prompt(recipe, t) + (t.solution or "") for t in load_tasks(recipe, "train", 2000, seed=1)]
    tokenizer = train_tokenizer(texts, 2048)
    if small:
        config = TinyModelConfig(
            hidden_size=128, intermediate_size=256, num_layers=2, num_heads=2, max_positions=512
        )
    else:
        config = TinyModelConfig(
            hidden_size=1024, intermediate_size=2816, num_layers=8, num_heads=16, max_positions=1024
        )
    make_model(config, tokenizer, seed=0).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def same_fraction(first: list, second: list) -> float:
    """The fraction of completions (prompt x sample) whose token ids are equal in two generate calls."""
    pairs = [(a, b) for g, h in zip(first, second, strict=True) for a, b in zip(g, h, strict=True)]
    return sum(a.token_ids == b.token_ids for a, b in pairs) / len(pairs)


def timed(device: torch.device, fn):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a local model folder (default: build one)")
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU: checks the script, not a GPU")
    parser.add_argument("--out", type=Path, default=None, help="also write the results here as JSON")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --cpu for a dry run of the script)", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    report: dict = {
        "device": "cpu (dry run, not a GPU result)" if args.cpu else torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "ran": [],
        "skipped": {},
    }
    print(
        f"gpu_check on {report['device']}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        run_checks(args, device, report, Path(work))
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_checks(args: argparse.Namespace, device: torch.device, report: dict, work: Path) -> None:

    # --- model ----------------------------------------------------------------------------------------------
    path = args.model or build_model(work / "model", small=args.cpu)
    dtype = "float32" if args.cpu else "bfloat16"
    policy = HFPolicy.from_pretrained(path, device=device.type, dtype=dtype)
    params = sum(p.numel() for p in policy.model.parameters())
    report["model"] = {"path": str(path), "parameters": params, "dtype": dtype}
    recipe = load_recipe("arith")
    prompts = [format_prompt(recipe, t) for t in load_tasks(recipe, "test", PROMPTS, seed=0, steps=2)]
    print(f"model {path}: {params / 1e6:.1f}M parameters, {dtype}", flush=True)

    # --- 1. transformers backend ----------------------------------------------------------------------------
    kwargs = {"n": SAMPLES, "max_new_tokens": NEW_TOKENS, "temperature": 1.0, "seed": 0}
    policy.generate(prompts[:4], n=1, max_new_tokens=8, temperature=1.0, seed=0)  # warm-up
    reset_peak(device)
    groups, seconds = timed(device, lambda: policy.generate(prompts, **kwargs))
    tokens = sum(c.num_tokens for g in groups for c in g)
    again = policy.generate(prompts, **kwargs)
    greedy = {"n": 1, "max_new_tokens": NEW_TOKENS, "temperature": 0.0}
    greedy_runs = [policy.generate(prompts, **greedy) for _ in range(2)]
    # bitwise-equal repeats need deterministic kernels on a GPU: the same calls again in that mode
    torch.use_deterministic_algorithms(True, warn_only=True)
    strict_runs = [policy.generate(prompts, **kwargs) for _ in range(2)]
    torch.use_deterministic_algorithms(False)
    hf = {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_gib": peak_gib(device),
        "same_seed_same_samples": same_fraction(groups, again),
        "greedy_repeat_same": same_fraction(*greedy_runs),
        "deterministic_mode_same_seed_same_samples": same_fraction(*strict_runs),
    }
    report["transformers_generate"] = hf
    report["ran"].append("transformers_generate")
    print(
        f"1. transformers {dtype}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:,.0f} tok/s; "
        f"same seed, same samples: {hf['same_seed_same_samples']:.1%} (in deterministic mode "
        f"{hf['deterministic_mode_same_seed_same_samples']:.1%}); "
        f"greedy repeated: {hf['greedy_repeat_same']:.1%}",
        flush=True,
    )

    # --- 2. a training step ---------------------------------------------------------------------------------
    pairs = [
        PreferencePair(p, g[0].text, g[1].text, True, True) for p, g in zip(prompts, groups, strict=True)
    ]
    pairs = [p for p in pairs if p.chosen and p.rejected and p.chosen != p.rejected]
    config = TrainConfig(
        loss="rpo",
        lr=1e-5,
        batch_size=8,
        epochs=1,
        max_length=512,
        device=device.type,
        dtype="fp32" if args.cpu else "bf16",
        warmup_frac=0.0,
    )
    model = policy.model.float() if not args.cpu else policy.model  # fp32 master weights, bf16 autocast
    reset_peak(device)
    result, seconds = timed(
        device, lambda: train_preference(model, policy.tokenizer, pairs, config, out_dir=work / "ckpt")
    )
    losses = [m["train/loss"] for m in result.metrics]
    train = {
        "pairs": len(pairs),
        "steps": result.steps,
        "seconds": round(seconds, 3),
        "steps_per_s": round(result.steps / result.seconds, 3),
        "tokens_per_s": round(result.tokens_per_second, 1),
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
        "finite": all(math.isfinite(x) for x in losses),
        "peak_gib": peak_gib(device),
    }
    report["train_step"] = train
    report["ran"].append("train_step")
    print(
        f"2. training ({config.dtype}): {result.steps} steps of {config.batch_size} pairs, {seconds:.2f} s, "
        f"{result.tokens_per_second:,.0f} tok/s, loss {losses[0]:.4f} -> {losses[-1]:.4f}",
        flush=True,
    )

    # --- 3. vLLM backend ------------------------------------------------------------------------------------
    from selfimprove.policy.vllm import VLLMPolicy, vllm_available

    ok, why = vllm_available()
    if args.cpu or not ok:
        report["skipped"]["vllm"] = "CPU dry run" if args.cpu else why
        print(f"3. vLLM: skipped ({report['skipped']['vllm']})", flush=True)
    else:
        trained = policy.model  # the trained weights, fp32 on the GPU
        reference = HFPolicy.from_pretrained(path, device="cuda", dtype="bfloat16")
        engine, startup = timed(
            device, lambda: VLLMPolicy.from_pretrained(path, dtype="bfloat16", gpu_memory_utilization=0.4)
        )
        engine.generate(prompts[:4], n=1, max_new_tokens=8, temperature=1.0, seed=0)  # warm-up
        vgroups, seconds = timed(device, lambda: engine.generate(prompts, **kwargs))
        vtokens = sum(c.num_tokens for g in vgroups for c in g)
        texts = [g[0].text for g in groups[:16]]
        got, want = engine.token_logprobs(prompts[:16], texts), reference.token_logprobs(prompts[:16], texts)
        diff = max(
            (abs(a - b) for g, w in zip(got, want, strict=True) for a, b in zip(g, w, strict=True)),
            default=0.0,
        )
        reload_record = engine.sync_weights(work / "ckpt")
        trained_ref = HFPolicy(trained, reference.tokenizer)
        after = engine.token_logprobs(prompts[:16], texts)
        want_trained = trained_ref.token_logprobs(prompts[:16], texts)
        reload_diff = max(
            abs(a - b) for g, w in zip(after, want_trained, strict=True) for a, b in zip(g, w, strict=True)
        )
        engine.sync_weights(path)  # back to the start, then push the trained tensors without a file
        in_place_record = engine.sync_weights(trained)
        after = engine.token_logprobs(prompts[:16], texts)
        in_place_diff = max(
            abs(a - b) for g, w in zip(after, want_trained, strict=True) for a, b in zip(g, w, strict=True)
        )
        report["vllm"] = {
            "engine_start_seconds": round(startup, 1),
            "tokens": vtokens,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(vtokens / seconds, 1),
            "speedup_vs_transformers": round((vtokens / seconds) / hf["tokens_per_s"], 2),
            "max_token_logprob_diff_vs_transformers_bf16": round(diff, 4),
            "reload": reload_record.to_dict() | {"max_diff_after": round(reload_diff, 4)},
            "in_place": in_place_record.to_dict() | {"max_diff_after": round(in_place_diff, 4)},
        }
        report["ran"].append("vllm")
        v = report["vllm"]
        print(
            f"3. vLLM bf16: {vtokens} tokens in {seconds:.2f} s = {v['tokens_per_s']:,.0f} tok/s "
            f"({v['speedup_vs_transformers']}x transformers); max |logprob diff| {diff:.4f}; "
            f"reload {reload_record.seconds:.2f} s (diff after {reload_diff:.4f}), "
            f"in_place {in_place_record.seconds:.2f} s (diff after {in_place_diff:.4f})",
            flush=True,
        )
        del engine
        gc.collect()


if __name__ == "__main__":
    sys.exit(main())
