"""Shared fixtures: small real models (no mocks) for generation, scoring, training and search tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# The tiny models here are dominated by per-operator overhead, not FLOPs; one thread is as fast on an
# idle machine and several times faster on a busy one (two threads spin against other processes).
torch.set_num_threads(1)

# A fixed corpus so the random-model tokenizer is identical on every run (no dependency on the generator).
_CORPUS = [
    f"Question: Tom has {a} apples and buys {b} more. How many apples does he have?\nAnswer:\n"
    f"He has {a}+{b}=<<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"
    for a in range(1, 60, 7)
    for b in range(2, 40, 5)
]


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised small Llama (hidden 64, 2 layers) + byte-level BPE tokenizer, saved to disk.

    Loads with AutoModelForCausalLM / AutoTokenizer.from_pretrained. eos `<|end|>`, pad `<|pad|>`, no BOS.
    Built in about a second: use it where the weights need not have learned anything.
    """
    from selfimprove.policy.tiny import TinyModelConfig, make_model, train_tokenizer

    config = TinyModelConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4)
    tokenizer = train_tokenizer(_CORPUS, config.vocab_size)
    model = make_model(config, tokenizer, seed=0)
    path = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def trained_tiny_path() -> Path:
    """The `test` preset of the embedded tiny model: SFT-trained briefly on 1-2 step arith problems.

    Its outputs are well-formed GSM8K-style solutions (one step per line, `<<a*b=c>>` annotations,
    `#### N`) whose arithmetic is mostly wrong: a few percent right on 1-step problems. Cached in the user
    cache (SELFIMPROVE_CACHE or ~/.cache/selfimprove) so only the first test session pays for the build.
    """
    from selfimprove.policy.tiny import build_tiny_model

    return build_tiny_model("test")
