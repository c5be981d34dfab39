"""Preference training (the DPO family, RPO, ORPO) and SFT of causal LMs on verified pairs (DESIGN §3, §6).

Names are imported lazily, so `import selfimprove.train.cli` (for `selfimprove train --help`) does not pay
for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "preference_loss": "selfimprove.train.losses",
    "rpo_loss": "selfimprove.train.losses",
    "orpo_loss": "selfimprove.train.losses",
    "LOSS_TYPES": "selfimprove.train.losses",
    "SFTConfig": "selfimprove.train.config",
    "TrainConfig": "selfimprove.train.config",
    "TrainResult": "selfimprove.train.engine",
    "train_preference": "selfimprove.train.trainer",
    "train_sft": "selfimprove.train.sft",
    "load_checkpoint": "selfimprove.train.checkpoint",
    "score_pairs": "selfimprove.train.reference",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'selfimprove.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
