"""LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) through peft: train low-rank adapters, then merge.

The caller's model is trained in place: peft injects the adapters into the model's own modules, and
`merge_and_unload` folds them back into the base weights, so afterwards the same object is a plain
transformers model with updated weights that `save_pretrained` writes as a full checkpoint.
"""

from __future__ import annotations

import torch

from selfimprove.train.config import SFTConfig


def add_lora(model, config: SFTConfig):
    """Wrap `model` with seeded LoRA adapters; returns the peft model and the requires_grad flags before."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # the `lora` extra
        raise ValueError("lora=True needs peft: pip install 'selfimprove[lora]'") from err
    targets = config.lora_targets
    lora_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,  # the trainer runs without dropout (policy and reference must be comparable)
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        bias="none",
    )
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    # peft initialises the adapters from torch's global RNG: seed it, and leave the caller's RNG state alone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        peft_model = get_peft_model(model, lora_config)
    return peft_model, flags


def merge_lora(peft_model, flags: dict[str, bool]):
    """Fold the adapters into the base weights; returns the same base model, requires_grad restored."""
    model = peft_model.merge_and_unload()
    for name, p in model.named_parameters():
        p.requires_grad_(flags.get(name, True))
    return model
