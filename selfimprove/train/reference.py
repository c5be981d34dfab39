"""Reference log-probs, computed once before training; no reference model stays in memory while training.

By default the reference is the iteration's starting policy: the model being trained, scored before its
first update. A fixed reference (another model object, or a path) is loaded, used for one pass and freed.
Per-token values are kept (not only sums), so the trainer can apply token weights and estimate the KL.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from selfimprove.train.data import TokenizedPair
from selfimprove.train.engine import autocast
from selfimprove.train.logprobs import pair_logps, use_shared_prompt

logger = logging.getLogger(__name__)


@torch.no_grad()
def score_pairs(
    model,
    items: Sequence[TokenizedPair],
    *,
    batch_size: int,
    pad_id: int,
    share_prompt: str = "auto",
    amp_dtype: torch.dtype | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-token log-probs (CPU float32, one 1-D tensor per completion) of every pair, in the items' order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(items)), key=lambda i: -(len(items[i].prompt_ids) + _longest(items[i])))
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(items)
    try:
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch = [items[i] for i in indices]
            with autocast(device, amp_dtype):
                chosen, rejected = pair_logps(
                    model, batch, pad_id=pad_id, shared=use_shared_prompt(share_prompt, batch)
                )
            chosen, rejected = chosen.float().cpu(), rejected.float().cpu()
            for row, i in enumerate(indices):
                out[i] = (
                    chosen[row, : len(items[i].chosen_ids)],
                    rejected[row, : len(items[i].rejected_ids)],
                )
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def reference_logps(
    reference,
    policy,
    items: Sequence[TokenizedPair],
    *,
    batch_size: int,
    pad_id: int,
    share_prompt: str,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Score `items` with the reference: None = `policy` as it is now; a model object; or a model path."""
    kwargs = {
        "batch_size": batch_size,
        "pad_id": pad_id,
        "share_prompt": share_prompt,
        "amp_dtype": amp_dtype,
    }
    if reference is None:
        return score_pairs(policy, items, **kwargs)
    if isinstance(reference, (str, Path)):
        from transformers import AutoModelForCausalLM

        path = Path(reference)
        if not (path / "config.json").exists():
            raise ValueError(f"reference {path} is not a model folder (no config.json)")
        logger.info("loading the fixed reference model from %s", path)
        model = AutoModelForCausalLM.from_pretrained(path).to(device)
        try:
            _check_vocab(model, policy)
            return score_pairs(model, items, **kwargs)
        finally:
            del model
            gc.collect()
    if not isinstance(reference, torch.nn.Module):
        raise ValueError(f"reference must be None, a model or a model path; got {type(reference).__name__}")
    _check_vocab(reference, policy)
    return score_pairs(reference, items, **kwargs)


def _check_vocab(reference, policy) -> None:
    ref_vocab = reference.get_output_embeddings().weight.shape[0]
    policy_vocab = policy.get_output_embeddings().weight.shape[0]
    if ref_vocab != policy_vocab:
        raise ValueError(
            f"the reference scores {ref_vocab} tokens, the policy {policy_vocab}: they must share a tokenizer"
        )


def _longest(item: TokenizedPair) -> int:
    return max(len(item.chosen_ids), len(item.rejected_ids))
