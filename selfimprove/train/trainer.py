"""Preference training of a causal LM on PreferencePairs: the DPO family, RPO and ORPO (DESIGN §6).

The trainer reads top to bottom: tokenise the pairs; score them once with the reference (before any
update of the policy, so no second model is kept); optionally add LoRA adapters; then the shared
optimisation loop (engine.py) runs micro-batches through the plain or shared-prompt forward
(logprobs.py), weighs tokens by the mask spans, and applies the loss (losses.py). At the end adapters are
merged, and the model, tokenizer and trainer_state.json are saved if an output folder is given.

Dropout is off while training (the model runs in eval mode, as TRL's `disable_dropout` default): the
policy's log-probs must be comparable with the reference's, which were computed without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from selfimprove.records import PreferencePair
from selfimprove.train.checkpoint import generator_state, save_checkpoint
from selfimprove.train.config import TrainConfig
from selfimprove.train.data import TokenizedPair, tokenize_pairs
from selfimprove.train.engine import ProgressFn, TrainResult, optimize, resolve_device
from selfimprove.train.logprobs import pair_logps, use_shared_prompt
from selfimprove.train.lora import add_lora, merge_lora
from selfimprove.train.losses import log_odds, orpo_loss, preference_loss, rpo_loss
from selfimprove.train.reference import reference_logps

logger = logging.getLogger(__name__)


def train_preference(
    model,
    tokenizer,
    pairs: Sequence[PreferencePair],
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    reference=None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train `model` in place on `pairs`; returns the metrics of every step.

    `reference` is None (the policy as passed in, scored before the first update), another model, or a
    path to one (loaded, used once, freed). ORPO needs no reference and ignores it.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not pairs:
        raise ValueError("no preference pairs to train on")
    start = time.perf_counter()
    device, amp_dtype = resolve_device(config)
    model.to(device)
    pad_id = _pad_id(tokenizer)

    # --- data --------------------------------------------------------------------------------------------
    items = tokenize_pairs(tokenizer, pairs, max_length=config.max_length, mask_spans=config.mask_spans)
    if not items:
        raise ValueError(f"none of the {len(pairs)} pairs has tokens to train on (see the warnings above)")

    # --- reference log-probs, once, before any update ------------------------------------------------------
    ref: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    if config.needs_reference:
        ref = reference_logps(
            reference,
            model,
            items,
            batch_size=config.batch_size,
            pad_id=pad_id,
            share_prompt=config.share_prompt,
            device=device,
            amp_dtype=amp_dtype,
        )

    # --- model ---------------------------------------------------------------------------------------------
    was_training = model.training
    model.eval()  # no dropout: see the module docstring
    trained, lora_flags = add_lora(model, config) if config.lora else (model, None)

    # --- loop ----------------------------------------------------------------------------------------------
    def micro_step(micro: list[int], step: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        micro_ref = None if ref is None else [ref[i] for i in micro]
        return _pair_step(trained, [items[i] for i in micro], micro_ref, len(step), config, pad_id)

    try:
        history, tokens, generator = optimize(
            trained,
            lengths=[len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in items],
            tokens=[p.num_tokens for p in items],
            micro_step=micro_step,
            summarize=_summarize,
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
        state = _state(config, result, generator, reference, len(pairs), len(items))
        save_checkpoint(model, tokenizer, out_dir, state)
    return result


def _pair_step(
    model,
    batch: list[TokenizedPair],
    ref: list[tuple[torch.Tensor, torch.Tensor]] | None,
    step_size: int,
    config: TrainConfig,
    pad_id: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one micro-batch (divided by the step's number of pairs) and its metric sums."""
    shared = use_shared_prompt(config.share_prompt, batch)
    chosen_tok, rejected_tok = pair_logps(model, batch, pad_id=pad_id, shared=shared)  # (B, Kc), (B, Kr)
    device = chosen_tok.device
    chosen_w = _padded([p.chosen_weights for p in batch], chosen_tok.shape[1], device)  # (B, Kc)
    rejected_w = _padded([p.rejected_weights for p in batch], rejected_tok.shape[1], device)  # (B, Kr)
    full_chosen_logps, full_chosen_len = (chosen_tok * chosen_w).sum(-1), chosen_w.sum(-1)  # for the NLL
    if config.divergence_window:
        chosen_w, rejected_w = _focus_on_divergence(batch, chosen_w, rejected_w, config.divergence_window)
    chosen_logps = (chosen_tok * chosen_w).sum(-1)  # (B,)
    rejected_logps = (rejected_tok * rejected_w).sum(-1)  # (B,)
    chosen_len, rejected_len = chosen_w.sum(-1), rejected_w.sum(-1)  # (B,) weighted token counts

    sums: dict[str, float] = {}
    if ref is None:  # ORPO: reference-free; its "rewards" are the length-averaged log-odds
        losses = orpo_loss(
            chosen_logps,
            rejected_logps,
            lam=config.orpo_lambda,
            chosen_lengths=chosen_len,
            rejected_lengths=rejected_len,
        )
        chosen_rewards = log_odds(chosen_logps.detach() / chosen_len.clamp(min=1))
        rejected_rewards = log_odds(rejected_logps.detach() / rejected_len.clamp(min=1))
    else:
        ref_chosen_tok = _padded([c for c, _ in ref], chosen_tok.shape[1], device)  # (B, Kc)
        ref_rejected_tok = _padded([r for _, r in ref], rejected_tok.shape[1], device)  # (B, Kr)
        ref_chosen = (ref_chosen_tok * chosen_w).sum(-1)
        ref_rejected = (ref_rejected_tok * rejected_w).sum(-1)
        losses = _reference_loss(
            config,
            chosen_logps,
            rejected_logps,
            ref_chosen,
            ref_rejected,
            chosen_len,
            rejected_len,
            nll=(full_chosen_logps, full_chosen_len),
        )
        chosen_rewards = config.beta * (chosen_logps.detach() - ref_chosen)
        rejected_rewards = config.beta * (rejected_logps.detach() - ref_rejected)
        # k3 estimator (Schulman 2020, http://joschu.net/blog/kl-approx.html) of KL(π_ref ‖ π_θ) per token:
        # with d = log π_θ − log π_ref on a token sampled from π_ref, E[e^d − 1 − d] = KL, every term >= 0
        for tok, ref_tok, w in (
            (chosen_tok, ref_chosen_tok, chosen_w),
            (rejected_tok, ref_rejected_tok, rejected_w),
        ):
            d = (tok.detach() - ref_tok).clamp(-20, 20)
            counted = w > 0
            sums["kl_sum"] = sums.get("kl_sum", 0.0) + float(((d.exp() - 1 - d) * counted).sum())
            sums["kl_tokens"] = sums.get("kl_tokens", 0.0) + float(counted.sum())

    sums.update(
        {
            "loss": float(losses.detach().sum()),
            "chosen_rewards": float(chosen_rewards.sum()),
            "rejected_rewards": float(rejected_rewards.sum()),
            "correct": float((chosen_rewards > rejected_rewards).sum()),
            "chosen_logps": float(chosen_logps.detach().sum()),
            "rejected_logps": float(rejected_logps.detach().sum()),
            "nll": float((-full_chosen_logps.detach() / full_chosen_len.clamp(min=1)).sum()),
        }
    )
    return losses.sum() / step_size, sums


def _reference_loss(
    config: TrainConfig, chosen, rejected, ref_chosen, ref_rejected, chosen_len, rejected_len, *, nll
):
    if config.loss == "rpo":
        nll_logps, nll_len = nll
        return rpo_loss(
            chosen,
            rejected,
            ref_chosen,
            ref_rejected,
            beta=config.beta,
            alpha=config.rpo_alpha,
            chosen_lengths=nll_len,
            label_smoothing=config.label_smoothing,
            nll_chosen_logps=nll_logps,
        )
    return preference_loss(
        chosen,
        rejected,
        ref_chosen,
        ref_rejected,
        beta=config.beta,
        loss_type=config.loss,
        label_smoothing=config.label_smoothing,
        chosen_lengths=chosen_len,
        rejected_lengths=rejected_len,
        dpop_lambda=config.dpop_lambda,
    )


def _focus_on_divergence(
    batch: list[TokenizedPair], chosen_w: torch.Tensor, rejected_w: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep each side's weights only on the `window` tokens from the first token where the sides differ.

    Tokens before that point are shared and cancel in the margin anyway; a pair whose sides never differ
    gets no preference signal at all.
    """
    chosen_keep, rejected_keep = torch.zeros_like(chosen_w), torch.zeros_like(rejected_w)
    for row, pair in enumerate(batch):
        shared = 0
        for a, b in zip(pair.chosen_ids, pair.rejected_ids, strict=False):
            if a != b:
                break
            shared += 1
        chosen_keep[row, shared : shared + window] = 1.0
        rejected_keep[row, shared : shared + window] = 1.0
    return chosen_w * chosen_keep, rejected_w * rejected_keep


def _summarize(sums: dict[str, float], n: int) -> dict[str, float]:
    metrics = {
        "train/loss": sums["loss"] / n,
        "rewards/chosen": sums["chosen_rewards"] / n,
        "rewards/rejected": sums["rejected_rewards"] / n,
        "rewards/accuracy": sums["correct"] / n,
        "rewards/margin": (sums["chosen_rewards"] - sums["rejected_rewards"]) / n,
        "logps/chosen": sums["chosen_logps"] / n,
        "logps/rejected": sums["rejected_logps"] / n,
        "train/nll": sums["nll"] / n,
    }
    if "kl_sum" in sums:
        metrics["train/kl"] = sums["kl_sum"] / max(sums["kl_tokens"], 1.0)
    return metrics


def _padded(rows: Sequence[Sequence[float]] | Sequence[torch.Tensor], width: int, device) -> torch.Tensor:
    """Right-pad 1-D rows with zeros to (len(rows), width)."""
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, row in enumerate(rows):
        values = row if isinstance(row, torch.Tensor) else torch.tensor(row, dtype=torch.float32)
        out[i, : len(values)] = values[:width]
    return out.to(device)


def _pad_id(tokenizer) -> int:
    """Any id works (padding is masked out); prefer the tokenizer's own pad, then end token."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _state(
    config: TrainConfig, result: TrainResult, generator, reference, n_pairs: int, n_used: int
) -> dict[str, Any]:
    if reference is None:
        ref_name = "initial policy" if config.needs_reference else None
    else:
        ref_name = str(reference) if isinstance(reference, (str, Path)) else type(reference).__name__
    return {
        "kind": "preference",
        "config": config.to_dict(),
        "reference": ref_name,
        "pairs": n_pairs,
        "pairs_used": n_used,
        "steps": result.steps,
        "tokens": result.tokens,
        "seconds": result.seconds,
        "final_metrics": result.final,
        "log_history": list(result.metrics),
        "rng_state": {"data_order": generator_state(generator)},
    }
