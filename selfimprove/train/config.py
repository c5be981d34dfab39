"""Training configs: a frozen dataclass for supervised fine-tuning, and one for preference training on top.

Defaults follow ../shared/docs/MEASURED.md: on the ~1M-parameter tiny model, DPO-family training at lr 1e-4
for 2 epochs reached 0.90 reward accuracy and collapsed held-out accuracy, while lr 1e-5 for 1 epoch helped;
RFT (SFT on verified-correct samples) at lr 1e-4 was as good as any. Every value is checked in
`__post_init__`, and an error names the field, the value given and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

PREFERENCE_LOSSES = ("sigmoid", "robust", "ipo", "hinge", "dpop", "rpo", "orpo")
SHARE_PROMPT_MODES = ("auto", "always", "never")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning on (prompt, completion): the loss is on completion tokens and the end token."""

    # optimisation: AdamW, linear warm-up then cosine decay, gradient accumulation, clipping
    lr: float = 1e-4
    epochs: int = 1
    batch_size: int = 16  # examples per forward pass (micro-batch)
    grad_accum: int = 1  # micro-batches per optimizer step: effective batch = batch_size * grad_accum
    warmup_frac: float = 0.03  # fraction of optimizer steps spent warming up linearly
    min_lr_frac: float = 0.1  # cosine decays to this fraction of lr (0 = the usual cosine to zero)
    weight_decay: float = 0.0  # on matrices only; norms, biases stay undecayed
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0  # clip the global gradient norm to this (math.inf: no clipping)
    seed: int = 0  # data order (torch.Generator) and LoRA initialisation
    # data
    max_length: int = 1024  # prompt + completion tokens; the prompt is cut from the left first
    # (open tag, close tag, weight): completion tokens between the tags count with this weight in the loss
    # (0.0 masks them), e.g. ("<|thinking|>", "<|/thinking|>", 0.0); the tags themselves keep weight 1
    mask_spans: tuple[tuple[str, str, float], ...] = ()
    # LoRA through peft: only the adapters train, and they are merged into the model at the end
    lora: bool = False
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("all-linear",)
    # placement: auto = cuda if available; dtype auto = fp32 on CPU, bf16 autocast on GPU
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        object.__setattr__(self, "mask_spans", _normalise_spans(self.mask_spans))
        _check(self.lr > 0 and math.isfinite(self.lr), "lr", self.lr, "a finite number > 0")
        for name in ("epochs", "batch_size", "grad_accum", "max_length", "lora_r"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                name,
                value,
                "an integer >= 1",
            )
        _check(
            isinstance(self.seed, int) and not isinstance(self.seed, bool), "seed", self.seed, "an integer"
        )
        _check(0 <= self.warmup_frac < 1, "warmup_frac", self.warmup_frac, "in [0, 1)")
        _check(0 <= self.min_lr_frac <= 1, "min_lr_frac", self.min_lr_frac, "in [0, 1]")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            self.betas,
            "two numbers in [0, 1)",
        )
        _check(
            self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "> 0 (math.inf disables clipping)"
        )
        _check(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "> 0")
        _check(
            len(self.lora_targets) > 0 and all(isinstance(t, str) and t for t in self.lora_targets),
            "lora_targets",
            self.lora_targets,
            "module names such as ('q_proj', 'v_proj'), or ('all-linear',)",
        )
        _check(self.device in DEVICES, "device", self.device, f"one of {DEVICES}")
        _check(self.dtype in DTYPES, "dtype", self.dtype, f"one of {DTYPES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """Build from a dict (e.g. trainer_state.json or TOML); unknown keys raise naming the allowed ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class TrainConfig(SFTConfig):
    """Preference training (DESIGN §6): the DPO family, RPO and ORPO, on PreferencePairs."""

    lr: float = 1e-5  # 1e-4 overfit the tiny model's pairs within 2 epochs (MEASURED.md)
    # sigmoid (DPO), robust (rDPO), ipo, hinge (SLiC), dpop (DPO-Positive), rpo (sigmoid + rpo_alpha * NLL),
    # orpo (no reference)
    loss: str = "sigmoid"
    beta: float = 0.1  # strength of the implicit KL penalty (IPO: τ)
    label_smoothing: float = 0.0  # sigmoid: conservative DPO ε; robust: assumed label-flip rate
    rpo_alpha: float = 1.0  # weight of the per-token NLL on chosen (loss "rpo")
    dpop_lambda: float = 50.0  # weight of DPOP's penalty on a falling chosen log-ratio (50 in the paper)
    orpo_lambda: float = 0.1  # weight of the odds-ratio term (loss "orpo"; 0.1 in the ORPO paper)
    # compute a pair's shared prompt once and run chosen and rejected against its KV cache: "auto" does it
    # unless the prompts are under a tenth of the completions' length (see logprobs.use_shared_prompt)
    share_prompt: str = "auto"
    # 0: the preference term scores every completion token. n > 0: it scores only the n tokens from the first
    # one where chosen and rejected differ (the NLL of RPO still covers the whole chosen). After a wrong
    # digit the rejected side goes on consistently (it copies its wrong result, it finishes the sentence);
    # pushing those tokens down teaches the model to stop being consistent, not to stop the error.
    divergence_window: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.loss in PREFERENCE_LOSSES, "loss", self.loss, f"one of {PREFERENCE_LOSSES}")
        _check(self.beta > 0 and math.isfinite(self.beta), "beta", self.beta, "a finite number > 0")
        if self.loss in ("sigmoid", "rpo"):
            _check(0 <= self.label_smoothing <= 0.5, "label_smoothing", self.label_smoothing, "in [0, 0.5]")
        elif self.loss == "robust":
            _check(
                0 <= self.label_smoothing < 0.5,
                "label_smoothing",
                self.label_smoothing,
                "in [0, 0.5) for robust",
            )
        else:
            _check(
                self.label_smoothing == 0,
                "label_smoothing",
                self.label_smoothing,
                f"0 for loss {self.loss!r} (it applies to sigmoid, robust and rpo)",
            )
        _check(self.rpo_alpha >= 0, "rpo_alpha", self.rpo_alpha, ">= 0")
        _check(self.divergence_window >= 0, "divergence_window", self.divergence_window, "an integer >= 0")
        _check(self.orpo_lambda >= 0, "orpo_lambda", self.orpo_lambda, ">= 0")
        _check(self.dpop_lambda >= 0, "dpop_lambda", self.dpop_lambda, ">= 0")
        _check(
            self.share_prompt in SHARE_PROMPT_MODES,
            "share_prompt",
            self.share_prompt,
            f"one of {SHARE_PROMPT_MODES}",
        )

    @property
    def needs_reference(self) -> bool:
        return self.loss != "orpo"


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: must be {allowed}")


def _normalise_spans(spans: Any) -> tuple[tuple[str, str, float], ...]:
    """Lists from JSON/TOML become tuples; each span is (non-empty open, non-empty close, weight >= 0)."""
    allowed = (
        "a sequence of (open tag, close tag, weight >= 0), e.g. (('<|thinking|>', '<|/thinking|>', 0.0),)"
    )
    try:
        out = tuple((o, c, float(w)) for o, c, w in spans)
    except (TypeError, ValueError):
        raise ValueError(f"mask_spans={spans!r} is not allowed: must be {allowed}") from None
    for open_tag, close_tag, weight in out:
        tags_ok = (
            isinstance(open_tag, str) and isinstance(close_tag, str) and bool(open_tag) and bool(close_tag)
        )
        _check(tags_ok and weight >= 0 and math.isfinite(weight), "mask_spans", spans, allowed)
    return out
