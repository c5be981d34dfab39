"""Supervised fine-tuning on (prompt, completion) pairs, the loss on completion tokens (+ end token) only.

The loop uses it for the RFT baseline (rejection-sampling fine-tuning, Yuan et al. 2023,
https://arxiv.org/abs/2308.01825): SFT on the policy's own verified-correct samples. The loss of a step is
the weighted mean negative log-likelihood over all completion tokens of the step, so that gradient
accumulation gives the same step as one large batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from selfimprove.train.checkpoint import generator_state, save_checkpoint
from selfimprove.train.config import SFTConfig
from selfimprove.train.data import tokenize_examples
from selfimprove.train.engine import ProgressFn, TrainResult, optimize, resolve_device
from selfimprove.train.logprobs import completion_logps
from selfimprove.train.lora import add_lora, merge_lora


def train_sft(
    model,
    tokenizer,
    examples: Sequence[tuple[str, str]],
    config: SFTConfig,
    *,
    out_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train `model` in place on (prompt, completion) examples; a TrainConfig works too (shared fields)."""
    if not isinstance(config, SFTConfig):
        raise ValueError(f"config must be an SFTConfig or TrainConfig, got {type(config).__name__}")
    if not examples:
        raise ValueError("no examples to train on")
    start = time.perf_counter()
    device, amp_dtype = resolve_device(config)
    model.to(device)
    pad_id = next((int(t) for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None), 0)

    # --- data --------------------------------------------------------------------------------------------
    items = tokenize_examples(tokenizer, examples, max_length=config.max_length, mask_spans=config.mask_spans)
    if not items:
        raise ValueError(
            f"none of the {len(examples)} examples has tokens to train on (see the warnings above)"
        )
    weighted_tokens = [sum(item.weights) for item in items]

    # --- model ---------------------------------------------------------------------------------------------
    was_training = model.training
    model.eval()  # no dropout, as in preference training: the runs stay comparable and deterministic
    trained, lora_flags = add_lora(model, config) if config.lora else (model, None)

    # --- loop ----------------------------------------------------------------------------------------------
    def micro_step(micro: list[int], step: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = [items[i] for i in micro]
        logps = completion_logps(
            trained, [b.prompt_ids for b in batch], [b.completion_ids for b in batch], pad_id=pad_id
        )  # (B, K)
        weights = torch.zeros_like(logps)
        for row, b in enumerate(batch):
            weights[row, : len(b.weights)] = torch.tensor(b.weights)
        nll = -(logps * weights).sum()
        step_tokens = max(sum(weighted_tokens[i] for i in step), 1e-8)
        return nll / step_tokens, {"nll": float(nll.detach()), "tokens": float(weights.sum())}

    def summarize(sums: dict[str, float], n: int) -> dict[str, float]:
        return {"train/loss": sums["nll"] / max(sums["tokens"], 1e-8)}

    try:
        history, tokens, generator = optimize(
            trained,
            lengths=[item.num_tokens for item in items],
            tokens=[item.num_tokens for item in items],
            micro_step=micro_step,
            summarize=summarize,
            config=config,
            device=device,
            amp_dtype=amp_dtype,
            progress=progress,
        )
    finally:
        if lora_flags is not None:
            merge_lora(trained, lora_flags)
        model.train(was_training)
    result = TrainResult(
        metrics=tuple(history), steps=len(history), tokens=tokens, seconds=time.perf_counter() - start
    )

    # --- save ----------------------------------------------------------------------------------------------
    if out_dir is not None:
        state = {
            "kind": "sft",
            "config": config.to_dict(),
            "examples": len(examples),
            "examples_used": len(items),
            "steps": result.steps,
            "tokens": result.tokens,
            "seconds": result.seconds,
            "final_metrics": result.final,
            "log_history": list(result.metrics),
            "rng_state": {"data_order": generator_state(generator)},
        }
        save_checkpoint(model, tokenizer, out_dir, state)
    return result
