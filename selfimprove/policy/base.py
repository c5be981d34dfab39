"""The Policy protocol (DESIGN §4): batched sampling with stop strings, and scoring of given completions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Completion:
    """One sampled continuation of a prompt.

    `text` excludes the stop string that ended it and any end-of-sequence token; `stop` names the stop
    string that matched (finish_reason "stop"), else None. `finish_reason` is "stop", "eos" or "length".
    `token_ids` are all tokens generated (the stop string's tokens included, the end token excluded) and
    `logprob` is their summed log-probability under the sampling model (before temperature).
    """

    text: str
    token_ids: tuple[int, ...]
    logprob: float
    finish_reason: str
    stop: str | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@runtime_checkable
class Policy(Protocol):
    """What every search, eval and trainer needs from a language model."""

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """For each prompt, `n` completions (temperature 0 is greedy)."""
        ...

    def logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Summed log-probability of each completion given its prompt (pairwise, same length)."""
        ...
