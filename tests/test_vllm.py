"""The vLLM backend. Without vLLM (or without a CUDA GPU) the engine tests skip, saying why, and the one
test that runs checks that asking for the backend fails with the install hint instead of a bare import
error. With vLLM on a GPU they check the backend against the transformers backend on the same weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from selfimprove.policy.backends import PolicySpec, open_policy
from selfimprove.policy.vllm import INSTALL_HINT, VLLMPolicy, vllm_available

VLLM_OK, VLLM_MISSING = vllm_available()
if VLLM_OK and not torch.cuda.is_available():
    VLLM_OK, VLLM_MISSING = (
        False,
        "vLLM is installed, but torch sees no CUDA GPU and the vLLM backend needs one",
    )
needs_vllm = pytest.mark.skipif(not VLLM_OK, reason=VLLM_MISSING)

PROMPTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:\n",
    "He has 8+22=<<8+22=30>>30",
    "Q",
]


@pytest.mark.skipif(VLLM_OK, reason="vLLM is installed: the engine tests below run instead")
def test_without_vllm_the_backend_says_how_to_install_it(tiny_lm_path) -> None:
    assert VLLM_MISSING.startswith(INSTALL_HINT)
    with pytest.raises(ImportError, match=r"pip install 'selfimprove\[vllm\]'"):
        VLLMPolicy.from_pretrained(tiny_lm_path)
    with pytest.raises(ImportError, match=r"pip install 'selfimprove\[vllm\]'"):
        open_policy(PolicySpec(backend="vllm", path=str(tiny_lm_path)))


# ---------------------------------------------------------------------------------------------------------
# on a GPU with vLLM


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A random Llama whose head size (64) every vLLM attention backend supports, with the test tokenizer."""
    from conftest import _CORPUS

    from selfimprove.policy.tiny import TinyModelConfig, make_model, train_tokenizer

    config = TinyModelConfig(
        vocab_size=300, hidden_size=128, intermediate_size=256, num_layers=2, num_heads=2
    )
    tokenizer = train_tokenizer(_CORPUS, config.vocab_size)
    path = tmp_path_factory.mktemp("vllm_lm")
    make_model(config, tokenizer, seed=0).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def engine(model_path) -> VLLMPolicy:
    return VLLMPolicy.from_pretrained(
        model_path, dtype="float32", gpu_memory_utilization=0.2, enforce_eager=True
    )


@pytest.fixture(scope="module")
def reference(model_path):
    from selfimprove.policy.hf import HFPolicy

    return HFPolicy.from_pretrained(model_path, device="cuda", dtype="float32")


def _hf_scores(reference, prompt: str, ids: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """(log-prob of each of `ids` after `prompt`, the best log-prob at each position) by one HF forward."""
    prompt_ids = reference.encode_prompts([prompt])[0]
    with torch.no_grad():
        logits = reference.model(torch.tensor([prompt_ids + list(ids)], device="cuda")).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)[len(prompt_ids) - 1 : -1]
    chosen = logp.gather(-1, torch.tensor(ids, device="cuda")[:, None]).squeeze(-1)
    return chosen.tolist(), logp.max(-1).values.tolist()


@needs_vllm
def test_greedy_tokens_are_the_transformers_argmax_and_logprobs_agree(engine, reference) -> None:
    groups = engine.generate(PROMPTS, n=2, max_new_tokens=20, temperature=0.0, stop=("\n",))
    for prompt, (first, second) in zip(PROMPTS, groups, strict=True):
        assert first == second  # greedy: n identical samples
        assert first.finish_reason in ("stop", "eos", "length") and first.token_ids
        chosen, best = _hf_scores(reference, prompt, first.token_ids)
        assert all(c >= b - 1e-3 for c, b in zip(chosen, best, strict=True))  # argmax up to float ties
        assert first.logprob == pytest.approx(math.fsum(chosen), abs=1e-3)


@needs_vllm
def test_n_samples_stop_at_the_delimiter_and_seeds_repeat(engine) -> None:
    kwargs = {"n": 8, "max_new_tokens": 24, "temperature": 1.0, "stop": ("\n",)}
    a, b = engine.generate(PROMPTS, seed=3, **kwargs), engine.generate(PROMPTS, seed=3, **kwargs)
    assert a == b
    assert a != engine.generate(PROMPTS, seed=4, **kwargs)
    assert all(len(group) == 8 for group in a) and len({c.text for c in a[0]}) > 1
    for completion in (c for group in a for c in group):
        assert "\n" not in completion.text
        assert (completion.stop == "\n") == (completion.finish_reason == "stop")
        assert completion.num_tokens <= 24 and math.isfinite(completion.logprob)


@needs_vllm
def test_scoring_agrees_with_the_transformers_backend(engine, reference) -> None:
    completions = [" He has 7 apples.\n#### 7", "+1=31", " A"]
    got, expected = (
        engine.token_logprobs(PROMPTS, completions),
        reference.token_logprobs(PROMPTS, completions),
    )
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=1e-3)


@needs_vllm
def test_weights_reach_the_engine_by_reload_and_in_place(engine, reference, model_path, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from selfimprove.policy.hf import HFPolicy

    before = engine.logprobs(PROMPTS, [" 7"] * 3)  # also fills the prefix cache with these prompts
    changed = AutoModelForCausalLM.from_pretrained(model_path)
    with torch.no_grad():
        changed.lm_head.weight.mul_(3.0)
    changed.save_pretrained(tmp_path, safe_serialization=True)
    expected = HFPolicy(changed.to("cuda"), reference.tokenizer).logprobs(PROMPTS, [" 7"] * 3)
    assert expected != pytest.approx(before, abs=1e-2)

    record = engine.sync_weights(tmp_path)
    assert record.mode == "reload" and record.tensors > 0 and record.source == str(tmp_path)
    assert engine.logprobs(PROMPTS, [" 7"] * 3) == pytest.approx(expected, abs=1e-3)

    original = AutoModelForCausalLM.from_pretrained(model_path).to("cuda")
    record = engine.sync_weights(original)
    assert record.mode == "in_place" and record.to_dict()["mode"] == "in_place"
    assert engine.logprobs(PROMPTS, [" 7"] * 3) == pytest.approx(before, abs=1e-3)
