"""The tiny model's supervised warm start: SFT on (prompt, solution) token ids, loss on solution tokens only.

One optimizer step is one batch of `batch_size` similar-length examples under a warm-up + cosine schedule.
The step runs at this CPU's matmul rate (docs/benchmarks.md, "Tiny model build"), so the build's time is set
by the tokens it trains on. Two things that did not make it faster here, measured side by side: two
data-parallel processes of one thread each (12,270 vs 12,091 tokens/s for two intra-op threads in one
process) and torch.compile (11,660 vs 12,630 tokens/s, after 138 s of compiling).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

ProgressFn = Callable[[int, int, dict[str, float]], None]
Example = tuple[list[int], int]  # (prompt + solution + end token ids, number of prompt tokens)


class WarmStartSchedule(Protocol):
    """The fields of TinyModelConfig the warm start reads."""

    optimizer_steps: int
    batch_size: int
    lr: float
    warmup_frac: float
    min_lr_frac: float
    weight_decay: float
    betas: tuple[float, float]
    grad_clip: float
    seed: int


def encode_examples(prompts: Sequence[str], solutions: Sequence[str], tokenizer) -> list[Example]:
    """(token ids of prompt + solution + end, number of prompt tokens) for each example.

    Encodes through the Rust tokenizer's batch call: 1.5x faster than the transformers wrapper's, which
    matters at 60k+ examples.
    """
    backend = tokenizer.backend_tokenizer
    prompt_ids = [e.ids for e in backend.encode_batch(list(prompts), add_special_tokens=False)]
    solution_ids = [e.ids for e in backend.encode_batch(list(solutions), add_special_tokens=False)]
    eos = tokenizer.eos_token_id
    return [(p + s + [eos], len(p)) for p, s in zip(prompt_ids, solution_ids, strict=True)]


def lr_at(step: int, config: WarmStartSchedule) -> float:
    """Linear warm-up, then cosine down to min_lr_frac * lr."""
    warmup = max(1, int(config.warmup_frac * config.optimizer_steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.optimizer_steps - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_frac + (1 - config.min_lr_frac) * cosine)


def collate(batch: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, attention mask and labels (-100 on prompt and padding)."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return input_ids, attention, labels


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches of similar-length examples, in random order.

    Shuffle, sort within windows of 64 batches, cut into batches, shuffle the batches: padding drops
    from ~40% of a random batch to a few percent while the data order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 64 * batch_size
    batches = []
    for begin in range(0, len(order) - batch_size + 1, window):
        chunk = sorted(order[begin : begin + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
    rng.shuffle(batches)
    return batches


def sft_warm_start(
    model,
    examples: list[Example],
    config: WarmStartSchedule,
    *,
    pad_id: int,
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """Train `model` in place for `config.optimizer_steps` steps; returns summary statistics."""
    rng = random.Random(config.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=config.betas,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    batches: list[list[int]] = []
    tokens_seen, start, loss_ema = 0, time.perf_counter(), float("nan")
    for step in range(config.optimizer_steps):
        if not batches:
            batches = length_bucketed_batches([len(ids) for ids, _ in examples], config.batch_size, rng)
        batch = [examples[i] for i in batches.pop()]
        input_ids, attention, labels = collate(batch, pad_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        tokens_seen += int(attention.sum())
        value = loss.item()
        loss_ema = value if math.isnan(loss_ema) else 0.95 * loss_ema + 0.05 * value
        if progress is not None:
            elapsed = time.perf_counter() - start
            progress(
                step + 1, config.optimizer_steps, {"loss": loss_ema, "tokens_per_s": tokens_seen / elapsed}
            )
    model.eval()
    seconds = time.perf_counter() - start
    return {
        "final_loss": loss_ema,
        "tokens": tokens_seen,
        "seconds": seconds,
        "tokens_per_s": tokens_seen / seconds,
    }
