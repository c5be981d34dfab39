"""The optimisation loop shared by preference training and SFT: nothing in it knows what the loss is.

AdamW (decay on matrices only), linear warm-up then cosine decay, gradient accumulation over micro-batches,
global-norm clipping (a step whose gradient is not finite is skipped and logged), fp32 on CPU and bf16
autocast on GPU, and a seeded torch.Generator for the data order.

A caller supplies `micro_step(micro, step) -> (loss, sums)`: the loss of one micro-batch already divided
by whatever normalises the whole step (number of pairs, or of weighted tokens), so that summing the
micro-batches' gradients gives the step's gradient whatever the split (batch 1 x accumulation 4 equals
batch 4 x accumulation 1); `sums` are metric numerators that `summarize` turns into the step's metrics.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from selfimprove.train.config import SFTConfig
from selfimprove.train.data import plan_epoch, steps_per_epoch
from selfimprove.train.distributed import data_parallel

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]
MicroStep = Callable[[list[int], list[int]], tuple[torch.Tensor, dict[str, float]]]
Summarize = Callable[[dict[str, float], int], dict[str, float]]


@dataclass(frozen=True)
class TrainResult:
    """What a training run did: one metrics dict per optimizer step (namespaced keys, see docs/losses.md).

    `tokens` counts the tokens of the training rows (a pair counts prompt + chosen and prompt + rejected,
    however much of that the shared-prompt path saves), summed over steps; `seconds` is wall time,
    reference log-probs included.
    """

    metrics: tuple[dict[str, float], ...]
    steps: int
    tokens: int
    seconds: float

    @property
    def final(self) -> dict[str, float]:
        return dict(self.metrics[-1]) if self.metrics else {}

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def resolve_device(config: SFTConfig) -> tuple[torch.device, torch.dtype | None]:
    """(device, autocast dtype or None): auto = cuda when available; fp32 on CPU, bf16 autocast on GPU."""
    name = config.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'")
    device = torch.device(name)
    dtype = config.dtype
    if dtype == "auto":
        dtype = "bf16" if device.type == "cuda" else "fp32"
    return device, (torch.bfloat16 if dtype == "bf16" else None)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def lr_at(step: int, total: int, config: SFTConfig) -> float:
    """Linear warm-up to lr over ceil(warmup_frac * total) steps, then cosine down to min_lr_frac * lr.

    With warmup_frac = 0 and min_lr_frac = 0 this is transformers' cosine schedule step for step.
    """
    warmup = math.ceil(config.warmup_frac * total)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_frac + (1 - config.min_lr_frac) * cosine)


def build_optimizer(model, config: SFTConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on matrices only (not norms, biases)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=config.betas)


def optimize(
    model,
    lengths: Sequence[int],
    tokens: Sequence[int],
    micro_step: MicroStep,
    summarize: Summarize,
    config: SFTConfig,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    progress: ProgressFn | None,
) -> tuple[list[dict[str, float]], int, torch.Generator]:
    """Run config.epochs epochs over examples 0..n-1; returns (metrics per step, tokens, generator).

    `lengths` order the examples into length buckets; `tokens` are counted into the result. Under
    torchrun with several processes each rank trains on its share of every step and the gradients are
    summed over ranks before clipping (distributed.py; fsdp.py when the model is sharded); alone, nothing
    changes.
    """
    parallel = data_parallel(model)
    if parallel is not None:
        parallel.broadcast_parameters(model)
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = steps_per_epoch(len(lengths), batch_size=config.batch_size, grad_accum=config.grad_accum)
    total = per_epoch * config.epochs
    optimizer = build_optimizer(model, config)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    history: list[dict[str, float]] = []
    seen_tokens, step = 0, 0
    for _ in range(config.epochs):
        plan = plan_epoch(
            lengths, batch_size=config.batch_size, grad_accum=config.grad_accum, generator=generator
        )
        for micro_batches in plan:
            lr = lr_at(step, total, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_indices = [i for micro in micro_batches for i in micro]
            sums: dict[str, float] = {}
            if parallel is not None:
                parallel.begin_step()
            local = micro_batches if parallel is None else parallel.shard(micro_batches, config.batch_size)
            for micro in local:
                with autocast(device, amp_dtype):
                    loss, micro_sums = micro_step(micro, step_indices)
                loss.backward()
                for key, value in micro_sums.items():
                    sums[key] = sums.get(key, 0.0) + value
            if parallel is not None:
                parallel.all_reduce_gradients(params)
                sums = parallel.sum_metrics(sums)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            if hasattr(grad_norm, "full_tensor"):  # a DTensor (FSDP): the norm over every rank's shards
                grad_norm = grad_norm.full_tensor()
            if torch.isfinite(grad_norm):
                optimizer.step()
            else:  # one bad batch (inf/nan) must not poison the weights: skip its update
                logger.warning("step %d: gradient norm is %s; update skipped", step + 1, float(grad_norm))
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen_tokens += sum(tokens[i] for i in step_indices)
            metrics = summarize(sums, len(step_indices))
            metrics.update(
                {
                    "train/lr": lr,
                    "train/grad_norm": float(grad_norm),
                    "train/epoch": step / per_epoch,
                    "train/tokens": float(seen_tokens),
                }
            )
            history.append(metrics)
            if progress is not None:
                progress(step, total, metrics)
    return history, seen_tokens, generator
