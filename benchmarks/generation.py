"""Benchmark: decode speed of HFPolicy's batched KV-cache loop at batch 1, 8, 32, 64, next to model.generate.

Every configuration generates the same number of tokens from the same arith prompts (greedy, the end token
disabled so no row stops early), in one run, so the ratios are side by side. Also measured: sampling
(T=0.8, top-p 0.95), the cost of checking a stop string on the decoded text, and prefilling a prompt once
for its n samples versus once per sample. The roofline is the measured fp32 GFLOP/s of a 2048x2048 matmul
on this machine divided by the FLOPs of one generated token (2 x non-embedding parameters + LM head +
attention over the context, as in PaLM, Appendix B).

    python benchmarks/generation.py                       # the `tiny` preset, built or reused (~10 min build)
    python benchmarks/generation.py --fresh               # a fresh model of the tiny shape: same FLOPs
    python benchmarks/generation.py --preset test --fresh --prompts 16   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from selfimprove.policy.hf import HFPolicy
from selfimprove.policy.tiny import PRESETS, build_tiny_model, make_model, train_tokenizer
from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks

# ---------------------------------------------------------------------------------------------------------
# setup


def load_model(preset: str, fresh: bool):
    """The built preset (cached by config hash), or a freshly initialised model of the same shape."""
    if not fresh:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = build_tiny_model(preset)
        return (
            AutoModelForCausalLM.from_pretrained(path).eval(),
            AutoTokenizer.from_pretrained(path),
            str(path),
        )
    recipe = load_recipe("arith")
    tasks = load_tasks(recipe, "train", 2000, seed=1)
    tokenizer = train_tokenizer(
        [format_prompt(recipe, t) + (t.solution or "") for t in tasks], PRESETS[preset].vocab_size
    )
    return make_model(PRESETS[preset], tokenizer, seed=0).eval(), tokenizer, f"fresh {preset}"


def arith_prompts(count: int) -> list[str]:
    """Held-out arith prompts of 1-4 steps (mixed lengths), sorted by length as both loops get them."""
    recipe = load_recipe("arith")
    tasks = [
        t for steps in (1, 2, 3, 4) for t in load_tasks(recipe, "test", count // 4 + 1, steps=steps, seed=0)
    ]
    return sorted((format_prompt(recipe, t) for t in tasks[:count]), key=len)


def search_prompts(count: int) -> list[str]:
    """Search-shaped prompts: a 4-step question with its worked solution as the prefix (~130 tokens)."""
    recipe = load_recipe("arith")
    return [
        format_prompt(recipe, t) + (t.solution or "") + "\n"
        for t in load_tasks(recipe, "test", count, steps=4, seed=1)
    ]


def line(name: str, batch: int, tokens: int, seconds: float) -> str:
    return f"  {name:<56} batch {batch:>3}: {tokens / seconds:8,.0f} tokens/s ({seconds:.2f} s)"


# ---------------------------------------------------------------------------------------------------------
# the two decoders; each returns (tokens generated, token ids per prompt)


def ours(
    model, tokenizer, prompts, *, batch_size, max_new_tokens, share_prefill=True, end_token=False, **kwargs
):
    policy = HFPolicy(model, tokenizer, batch_size=batch_size, share_prefill=share_prefill)
    if not end_token:
        policy.eos_ids = frozenset()  # no early end: every row generates exactly max_new_tokens
    out = policy.generate(prompts, max_new_tokens=max_new_tokens, **kwargs)
    # the end token counts as generated, as in model.generate's output
    tokens = sum(c.num_tokens + (c.finish_reason == "eos") for row in out for c in row)
    return tokens, [[c.token_ids for c in row] for row in out]


def hf_generate(model, tokenizer, prompts, *, batch_size, max_new_tokens, end_token=False):
    """model.generate on left-padded batches, greedy; without `end_token` it never stops early."""
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    # an eos_token_id of None in `config` falls back to the model's own: switch that off for the run
    saved, model.generation_config.eos_token_id = (
        model.generation_config.eos_token_id,
        eos if end_token else None,
    )
    tokenizer.padding_side = "left"
    tokens, out = 0, []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
            with torch.inference_mode():
                ids = model.generate(**batch, generation_config=config)[:, batch["input_ids"].shape[1] :]
            for row in ids.tolist():
                row = row[: row.index(eos) + 1] if end_token and eos in row else row  # drop the padding
                tokens += len(row)
                out.append([tuple(row)])
    finally:
        model.generation_config.eos_token_id = saved
    return tokens, out


# ---------------------------------------------------------------------------------------------------------
# roofline


def matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """Measured fp32 GFLOP/s of an (m x k) @ (k x n) matmul, best over ~`seconds` of repeats."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    reps = max(1, int(2e8 // (2 * m * k * n)))  # ~0.2 GFLOP per timing, so tiny shapes are timed in bulk
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * m * k * n / best / 1e9


def flops_per_token(model, context: float) -> dict[str, float]:
    """FLOPs of one decoded token: matmuls of the layers, the LM head, and attention over `context`."""
    config = model.config
    layer_params = sum(p.numel() for layer in model.model.layers for p in layer.parameters() if p.dim() == 2)
    head = config.hidden_size * config.vocab_size
    attention = 2 * 2 * config.num_hidden_layers * context * config.hidden_size  # q.k and p.v
    return {"layers": 2 * layer_params, "lm_head": 2 * head, "attention": attention}


# ---------------------------------------------------------------------------------------------------------
# main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument(
        "--fresh", action="store_true", help="a freshly initialised model of the preset's shape"
    )
    parser.add_argument("--prompts", type=int, default=64, help="prompts per batched configuration")
    parser.add_argument(
        "--prompts-batch1", type=int, default=16, help="prompts for the batch-1 configurations"
    )
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    torch.manual_seed(0)

    model, tokenizer, origin = load_model(args.preset, args.fresh)
    prompts = arith_prompts(args.prompts)
    prompt_tokens = statistics.mean(len(tokenizer(p)["input_ids"]) for p in prompts)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {origin}, {n_params:,} parameters, vocabulary {model.config.vocab_size}")
    print(f"prompts: {len(prompts)} arith prompts of 1-4 steps, mean {prompt_tokens:.0f} tokens; ")
    print(
        f"{args.max_new_tokens} new tokens each, greedy unless noted; torch threads {torch.get_num_threads()}"
    )
    new = args.max_new_tokens
    ours(model, tokenizer, prompts[:4], batch_size=4, max_new_tokens=8, temperature=0)  # warm-up
    hf_generate(model, tokenizer, prompts[:4], batch_size=4, max_new_tokens=8)

    # every case runs once per round, rounds repeat: load from other processes hits all cases alike
    batches = [int(b) for b in args.batch_sizes.split(",")]
    top = max(batches)
    few = prompts[:: max(1, len(prompts) // 8)][:8]
    cases = {}
    for batch in batches:
        subset = prompts[: args.prompts_batch1] if batch == 1 else prompts
        cases["HFPolicy loop", batch] = (subset, dict(decoder=ours, batch_size=batch, temperature=0))
        cases["model.generate", batch] = (subset, dict(decoder=hf_generate, batch_size=batch))
    sampled = dict(decoder=ours, batch_size=top, temperature=0.8, top_p=0.95, seed=0)
    cases["HFPolicy loop, sampled T=0.8 top-p 0.95", top] = (prompts, sampled)
    checked = dict(decoder=ours, batch_size=top, temperature=0, stop=["@@@"])
    cases["HFPolicy loop, a stop string checked", top] = (prompts, checked)
    for share in (True, False):
        name = f"HFPolicy loop, 8 prompts x n=8, {'shared' if share else 'separate'} prefill"
        cases[name, top] = (
            few,
            dict(decoder=ours, batch_size=top, n=8, temperature=0.8, seed=0, share_prefill=share),
        )
    long = search_prompts(8)
    for share in (True, False):
        name = f"8 long prompts x n=8, 16 new tokens, {'shared' if share else 'separate'} prefill"
        settings = dict(decoder=ours, batch_size=top, n=8, temperature=0.8, seed=0, share_prefill=share)
        cases[name, top] = (long, {**settings, "max_new_tokens": 16})
    if not args.fresh:  # a trained model ends its solutions: real, mixed lengths (as in eval)
        cases["HFPolicy loop, end token on", top] = (
            prompts,
            dict(decoder=ours, batch_size=top, temperature=0, end_token=True),
        )
        cases["model.generate, end token on", top] = (
            prompts,
            dict(decoder=hf_generate, batch_size=top, end_token=True),
        )

    best: dict[tuple[str, int], tuple[float, int]] = {}
    outputs: dict[tuple[str, int], list] = {}
    for round_ in range(args.repeats):
        for key, (subset, settings) in cases.items():
            settings = dict(settings)
            decoder = settings.pop("decoder")
            settings.setdefault("max_new_tokens", 256 if settings.get("end_token") else new)
            start = time.perf_counter()
            tokens, outputs[key] = decoder(model, tokenizer, subset, **settings)
            seconds = time.perf_counter() - start
            if key not in best or seconds < best[key][0]:
                best[key] = (seconds, tokens)
            if round_ == args.repeats - 1:
                print(line(*key, best[key][1], best[key][0]), flush=True)
    speed = {key: tokens / seconds for key, (seconds, tokens) in best.items()}

    # correctness: the same greedy tokens from both decoders and from batch 1
    same_hf = sum(
        a == b for a, b in zip(outputs["HFPolicy loop", top], outputs["model.generate", top], strict=True)
    )
    same_b1 = sum(
        a == b for a, b in zip(outputs["HFPolicy loop", 1], outputs["HFPolicy loop", top], strict=False)
    )
    print(f"greedy tokens equal to model.generate at batch {top}: {same_hf}/{len(prompts)} prompts")
    print(f"greedy tokens at batch {top} equal to batch 1: {same_b1}/{args.prompts_batch1} prompts")

    # roofline
    flops = flops_per_token(model, context=prompt_tokens + new / 2)
    total_flops = sum(flops.values())
    peak = matmul_gflops(2048, 2048, 2048)
    hidden, inter = model.config.hidden_size, model.config.intermediate_size
    small = matmul_gflops(top, hidden, inter)
    roofline = peak * 1e9 / total_flops
    best_ours = max(speed["HFPolicy loop", batch] for batch in batches)
    print(
        f"FLOPs per token: {total_flops / 1e6:.2f} M (layers {flops['layers'] / 1e6:.2f} M, "
        f"LM head {flops['lm_head'] / 1e6:.2f} M, attention {flops['attention'] / 1e6:.2f} M)"
    )
    print(f"fp32 matmul 2048x2048: {peak:.1f} GFLOP/s -> roofline {roofline:,.0f} tokens/s")
    print(f"fp32 matmul at the decode shape ({top}x{hidden} @ {hidden}x{inter}): {small:.1f} GFLOP/s")
    print(f"best batched decode: {best_ours:,.0f} tokens/s = {best_ours / roofline:.1%} of the roofline")
    print("speed-up over batch 1 (HFPolicy loop / model.generate):")
    ours_speed = {b: speed["HFPolicy loop", b] for b in batches}
    hf_speed = {b: speed["model.generate", b] for b in batches}
    for batch in batches:
        ours_up, hf_up = ours_speed[batch] / ours_speed[1], hf_speed[batch] / hf_speed[1]
        print(
            f"  batch {batch:>3}: {ours_up:5.1f}x / {hf_up:5.1f}x;"
            f"  HFPolicy loop / model.generate at this batch: {ours_speed[batch] / hf_speed[batch]:.2f}x"
        )
    if args.json:
        summary = {
            "model": origin,
            "parameters": n_params,
            "tokens_per_s": {f"{name} @ {batch}": value for (name, batch), value in speed.items()},
            "flops_per_token": flops,
            "matmul_gflops_2048": peak,
            "matmul_gflops_decode_shape": small,
            "roofline_tokens_per_s": roofline,
            "greedy_equal_to_generate": same_hf,
        }
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
