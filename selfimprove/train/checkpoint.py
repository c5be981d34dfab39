"""Checkpoints: `save_pretrained` (safetensors) + tokenizer + trainer_state.json, and the one loader for them.

trainer_state.json is written last and atomically, so its presence marks a complete checkpoint. It holds
the resolved config, steps, tokens, seconds, the metrics of every step and the data-order generator's state.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import torch

from selfimprove.io import atomic_write_json

STATE_FILE = "trainer_state.json"


def save_checkpoint(model, tokenizer, out_dir: str | Path, state: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    atomic_write_json(out_dir / STATE_FILE, state)
    return out_dir


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu"):
    """(model, tokenizer) from a folder written by save_checkpoint (or any save_pretrained folder)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise ValueError(f"{path} is not a model folder (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(path).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def read_state(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))


def generator_state(generator: torch.Generator) -> str:
    """A torch.Generator's state as base64 text (restore with `restore_generator`)."""
    return base64.b64encode(generator.get_state().numpy().tobytes()).decode("ascii")


def restore_generator(encoded: str) -> torch.Generator:
    generator = torch.Generator()
    generator.set_state(torch.frombuffer(bytearray(base64.b64decode(encoded)), dtype=torch.uint8))
    return generator
