"""Which engine runs the policy: one frozen spec, and the one function that opens a Policy from it.

- "hf": the transformers backend in this process (CPU or GPU), from a model folder;
- "vllm": vLLM's engine in this process (GPU, the `vllm` extra), from a model folder;
- "openai": any OpenAI-compatible completions server (vLLM, SGLang, TGI, `selfimprove serve`) by URL.

A spec is plain data, so it travels to other processes (Ray search workers) and into a run's config.toml,
and every process opens its own policy from it. `path` may be left empty in a config and filled in per
iteration (dataclasses.replace) with the checkpoint to open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from selfimprove.policy.base import Policy

BACKENDS = ("hf", "vllm", "openai")
WEIGHT_SYNC = ("reload", "in_place")


@dataclass(frozen=True)
class PolicySpec:
    backend: str = "hf"
    path: str = ""  # hf, vllm: the model folder; openai: the model's tokenizer folder (optional, see below)
    # openai: the server's base URL (ending in /v1) and the model name it serves
    url: str = ""
    model: str = ""
    api_key_env: str = ""  # openai: name of the environment variable holding the API key ("" = no key)
    timeout: float = 600.0  # openai: seconds the server may stay silent before an attempt fails
    max_retries: int = 4  # openai: further attempts after a failed one, with exponential back-off
    device: str = "auto"  # hf: auto (cuda if available), cpu, cuda
    dtype: str = "auto"  # hf: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16; vllm: auto, bfloat16, ...
    batch_size: int = 0  # hf: rows per forward (0 = chosen to fit memory)
    gpu_memory_utilization: float = 0.5  # vllm: share of GPU memory for weights + KV cache (trainer shares)
    weight_sync: str = "reload"  # vllm: how a new checkpoint reaches the engine, "reload" or "in_place"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is not allowed: choose from {list(BACKENDS)}")
        if self.backend == "openai" and not (self.url and self.model):
            raise ValueError(
                "backend 'openai' needs url (e.g. http://127.0.0.1:8000/v1) and model (its name)"
            )
        if self.weight_sync not in WEIGHT_SYNC:
            raise ValueError(
                f"weight_sync={self.weight_sync!r} is not allowed: choose from {list(WEIGHT_SYNC)}"
            )
        if self.batch_size < 0 or self.timeout <= 0 or self.max_retries < 0:
            raise ValueError(
                f"need batch_size >= 0, timeout > 0, max_retries >= 0; got {self.batch_size}, "
                f"{self.timeout}, {self.max_retries}"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")


def open_policy(spec: PolicySpec) -> Policy:
    """A ready Policy for `spec` (imports only the chosen backend's dependencies)."""
    if spec.backend in ("hf", "vllm") and not spec.path:
        raise ValueError(f"backend {spec.backend!r} needs path (a local model folder)")
    if spec.backend == "hf":
        from selfimprove.policy.hf import HFPolicy

        return HFPolicy.from_pretrained(
            spec.path, device=spec.device, dtype=spec.dtype, batch_size=spec.batch_size or None
        )
    if spec.backend == "vllm":
        from selfimprove.policy.vllm import VLLMPolicy

        return VLLMPolicy.from_pretrained(
            spec.path, dtype=spec.dtype, gpu_memory_utilization=spec.gpu_memory_utilization
        )
    from selfimprove.policy.openai_client import OpenAICompletionsPolicy

    api_key = None
    if spec.api_key_env:
        api_key = os.environ.get(spec.api_key_env)
        if not api_key:
            raise ValueError(
                f"api_key_env names {spec.api_key_env!r}, but that environment variable is unset"
            )
    return OpenAICompletionsPolicy(
        spec.url,
        spec.model,
        tokenizer=spec.path or None,
        api_key=api_key,
        timeout=spec.timeout,
        max_retries=spec.max_retries,
    )
