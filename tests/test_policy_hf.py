"""The transformers Policy backend: stop strings, seeds, left padding, and exact log-probabilities."""

from __future__ import annotations

import pytest
import torch

from selfimprove.policy.base import Completion, Policy
from selfimprove.policy.hf import HFPolicy

PROMPTS = [
    "Question: Tom has 3 apples.",
    "Q",
    "Question: Tom has 31 apples and buys 17 more. How many apples does he have?\nAnswer:\n",
    "He has 8+22=<<8+22=30>>30",
]


@pytest.fixture(scope="module")
def random_policy(tiny_lm_path) -> HFPolicy:
    return HFPolicy.from_pretrained(tiny_lm_path, device="cpu")


@pytest.fixture(scope="module")
def trained_policy(trained_tiny_path) -> HFPolicy:
    return HFPolicy.from_pretrained(trained_tiny_path, device="cpu")


@pytest.fixture(scope="module")
def arith_prompts() -> list[str]:
    from selfimprove.tasks.recipe import format_prompt, load_recipe, load_tasks

    recipe = load_recipe("arith")
    return [format_prompt(recipe, t) for t in load_tasks(recipe, "test", 6, steps=1, seed=0)]


def manual_logprobs(policy: HFPolicy, prompt: str, ids: list[int]) -> tuple[float, list[int]]:
    """Summed log-prob of `ids` after `prompt` from one plain forward pass, and the argmax at each step."""
    prompt_ids = policy.tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        logits = policy.model(torch.tensor([prompt_ids + ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)[len(prompt_ids) - 1 : -1]  # predicts ids
    total = logp.gather(-1, torch.tensor(ids)[:, None]).sum().item()
    return total, logits[len(prompt_ids) - 1 : -1].argmax(-1).tolist()


def test_satisfies_protocol_and_loads_on_cpu_in_fp32(random_policy):
    assert isinstance(random_policy, Policy)
    assert random_policy.device.type == "cpu"
    assert next(random_policy.model.parameters()).dtype == torch.float32
    assert 1 <= random_policy.rows_per_batch(300) <= 64
    assert random_policy.rows_per_batch(100_000) < random_policy.rows_per_batch(300)  # long rows: fewer
    assert (
        random_policy.num_tokens("He has 31+17=48")
        == len(random_policy.encode_completions(["He has 31+17=48"])[0])
        > 5
    )


def test_n_samples_per_prompt_and_lengths(random_policy):
    out = random_policy.generate(PROMPTS, n=3, max_new_tokens=12, temperature=1.0, seed=0)
    assert [len(row) for row in out] == [3, 3, 3, 3]
    for row in out:
        assert all(isinstance(c, Completion) and 1 <= c.num_tokens <= 12 for c in row)
        assert all(c.finish_reason in ("eos", "length") for c in row)
        assert len({c.token_ids for c in row}) > 1  # 3 samples of a random model: not all alike


def test_same_seed_same_samples_other_seed_differs(random_policy):
    def sample(seed: int) -> list[list[Completion]]:
        return random_policy.generate(PROMPTS, n=2, max_new_tokens=10, temperature=1.0, top_p=0.9, seed=seed)

    first, again, other = sample(7), sample(7), sample(8)
    assert first == again
    assert [c.token_ids for row in first for c in row] != [c.token_ids for row in other for c in row]


@pytest.mark.parametrize("batch_size", [None, 3])
def test_left_padded_greedy_batch_equals_batch_of_one(random_policy, batch_size):
    batched = HFPolicy(random_policy.model, random_policy.tokenizer, batch_size=batch_size)
    together = batched.generate(PROMPTS, max_new_tokens=16, temperature=0)
    for prompt, row in zip(PROMPTS, together, strict=True):
        alone = random_policy.generate([prompt], max_new_tokens=16, temperature=0)[0][0]
        assert row[0].token_ids == alone.token_ids
        assert row[0].logprob == pytest.approx(alone.logprob, abs=1e-4)


def test_greedy_is_argmax_and_logprobs_match_a_manual_forward(random_policy):
    out = random_policy.generate(PROMPTS, max_new_tokens=12, temperature=0)
    for prompt, (completion,) in zip(PROMPTS, out, strict=True):
        total, argmax = manual_logprobs(random_policy, prompt, list(completion.token_ids))
        assert list(completion.token_ids) == argmax
        assert completion.logprob == pytest.approx(total, abs=1e-4)


def test_sampled_logprobs_are_raw_model_logprobs_not_tempered(random_policy):
    out = random_policy.generate(PROMPTS, n=2, max_new_tokens=10, temperature=1.7, top_p=0.8, seed=3)
    for prompt, row in zip(PROMPTS, out, strict=True):
        for completion in row:
            total, _ = manual_logprobs(random_policy, prompt, list(completion.token_ids))
            assert completion.logprob == pytest.approx(total, abs=1e-4)


def test_logprobs_method_matches_manual_forward_and_shares_prompts(random_policy):
    prompts = [PROMPTS[0], PROMPTS[2], PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    completions = [" apples", " 48 apples.\n#### 48", " he has", "", "\n"]
    scores = random_policy.logprobs(prompts, completions)
    for prompt, completion, score in zip(prompts, completions, scores, strict=True):
        ids = random_policy.encode_completions([completion])[0]
        expected = manual_logprobs(random_policy, prompt, ids)[0] if ids else 0.0
        assert score == pytest.approx(expected, abs=1e-4)
    one_by_one = [random_policy.logprobs([p], [c])[0] for p, c in zip(prompts, completions, strict=True)]
    assert scores == pytest.approx(one_by_one, abs=1e-5)
    tiny_batches = HFPolicy(random_policy.model, random_policy.tokenizer, batch_size=1)
    assert tiny_batches.logprobs(prompts, completions) == pytest.approx(scores, abs=1e-5)


def test_sampler_frequencies_and_nucleus():
    from selfimprove.policy.hf import _sample

    generator = torch.Generator().manual_seed(0)
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3, 0.0]]).repeat(40_000, 1)
    full = torch.bincount(_sample(probs, 1.0, generator), minlength=5) / 40_000
    assert full.tolist() == pytest.approx([0.1, 0.0, 0.6, 0.3, 0.0], abs=0.01)  # 4 sigma is ~0.01
    nucleus = torch.bincount(_sample(probs, 0.65, generator), minlength=5) / 40_000  # {2, 3} renormalised
    assert nucleus.tolist() == pytest.approx([0.0, 0.0, 2 / 3, 1 / 3, 0.0], abs=0.01)
    assert _sample(probs[:100], 0.5, generator).eq(2).all()  # the top token alone reaches 0.5
    # a flat distribution over many tokens: the nucleus is beyond the top candidates, found by a full sort
    flat = torch.full((2000, 300), 1 / 300)
    picked = _sample(flat, 0.9, generator)
    assert 250 < len(picked.unique()) <= 270  # 270 equal tokens make up the 0.9 nucleus


def test_tiny_top_p_is_greedy(random_policy):
    greedy = random_policy.generate(PROMPTS, max_new_tokens=10, temperature=0)
    nucleus = random_policy.generate(PROMPTS, max_new_tokens=10, temperature=1.0, top_p=1e-6, seed=0)
    assert [r[0].token_ids for r in nucleus] == [r[0].token_ids for r in greedy]


def test_stop_string_spanning_tokens_cuts_the_text(random_policy):
    prompt = PROMPTS[2]
    full = random_policy.generate([prompt], max_new_tokens=30, temperature=1.0, seed=11)[0][0]
    ids = list(full.token_ids)
    # a stop string made of the text of tokens 5..7, so it spans three tokens
    stop_text = random_policy.tokenizer.decode(ids[5:8])
    assert len(stop_text) >= 2
    cut = random_policy.generate([prompt], max_new_tokens=30, temperature=1.0, seed=11, stop=[stop_text])[0][
        0
    ]
    assert cut.finish_reason == "stop" and cut.stop == stop_text
    assert cut.text == full.text[: full.text.find(stop_text)]
    assert stop_text not in cut.text
    assert ids[: len(cut.token_ids)] == list(cut.token_ids)  # the stop string's tokens are kept
    assert stop_text in random_policy.tokenizer.decode(cut.token_ids)
    assert cut.logprob == pytest.approx(
        manual_logprobs(random_policy, prompt, list(cut.token_ids))[0], abs=1e-4
    )


def test_prefill_sharing_does_not_change_results(random_policy):
    unshared = HFPolicy(random_policy.model, random_policy.tokenizer, share_prefill=False)
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    shared_out = random_policy.generate(prompts, n=3, max_new_tokens=8, temperature=0)
    unshared_out = unshared.generate(prompts, n=3, max_new_tokens=8, temperature=0)
    assert [[c.token_ids for c in r] for r in shared_out] == [[c.token_ids for c in r] for r in unshared_out]


def test_zero_new_tokens_and_empty_request(random_policy):
    assert random_policy.generate([], n=2) == []
    assert random_policy.generate(["Q"], n=2, max_new_tokens=0) == [[Completion("", (), 0.0, "length")] * 2]
    assert random_policy.logprobs([], []) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "n must be"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -1.0}, "temperature"),
        ({"stop": [""]}, "stop strings"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
    ],
)
def test_bad_arguments_raise_clear_errors(random_policy, kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_policy.generate(["Q"], **kwargs)


def test_bad_inputs_raise(random_policy, tmp_path):
    with pytest.raises(TypeError, match="single string"):
        random_policy.generate("Q")
    with pytest.raises(ValueError, match="encodes to no tokens"):
        random_policy.generate([""])
    with pytest.raises(ValueError, match="pair up"):
        random_policy.logprobs(["Q"], ["a", "b"])
    with pytest.raises(ValueError, match="not a folder"):
        HFPolicy.from_pretrained(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------------
# the trained test preset: real end tokens, newlines and mixed lengths


def test_trained_model_stops_at_newline_and_at_end_token(trained_policy, arith_prompts):
    eos_id = trained_policy.tokenizer.eos_token_id
    full = trained_policy.generate(arith_prompts, max_new_tokens=120, temperature=0)
    lines = trained_policy.generate(arith_prompts, max_new_tokens=120, temperature=0, stop=["\n"])
    for (whole,), (line,) in zip(full, lines, strict=True):
        assert whole.finish_reason == "eos" and "####" in whole.text
        assert eos_id not in whole.token_ids and "<|end|>" not in whole.text
        assert line.finish_reason == "stop" and line.stop == "\n"
        assert line.text == whole.text.split("\n")[0]
        assert whole.token_ids[: len(line.token_ids)] == line.token_ids


def test_trained_model_batched_rows_finishing_early_match_batch_of_one(trained_policy, arith_prompts):
    prompts = [
        *arith_prompts[:4],
        "Question: Ann has 5 pens. She buys 7 more. How many pens does she have?\n",
    ]
    batched = HFPolicy(trained_policy.model, trained_policy.tokenizer, batch_size=3)
    together = batched.generate(prompts, n=2, max_new_tokens=60, temperature=0)
    for prompt, row in zip(prompts, together, strict=True):
        alone = trained_policy.generate([prompt], max_new_tokens=60, temperature=0)[0][0]
        assert [c.token_ids for c in row] == [alone.token_ids] * 2
        assert row[0].finish_reason == alone.finish_reason
        total, _ = manual_logprobs(trained_policy, prompt, list(alone.token_ids))
        assert alone.logprob == pytest.approx(total, abs=1e-4)
    texts = [row[0].text for row in together]
    assert trained_policy.logprobs(prompts, texts) == pytest.approx(
        [row[0].logprob for row in together], abs=1e-4
    )
