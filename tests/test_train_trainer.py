"""Preference training and SFT on a small random Llama: masks, reference, checkpoints, seeds, equivalences."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from pairdata import apple_pairs

from selfimprove.records import PreferencePair
from selfimprove.train.checkpoint import load_checkpoint, read_state, restore_generator
from selfimprove.train.config import SFTConfig, TrainConfig
from selfimprove.train.data import tokenize_pairs
from selfimprove.train.logprobs import pair_logps
from selfimprove.train.reference import score_pairs
from selfimprove.train.sft import train_sft
from selfimprove.train.trainer import train_preference

THINK = ("<|thinking|>", "<|/thinking|>", 0.0)


@pytest.fixture(autouse=True)
def one_thread():
    """These matrices are tiny: one thread is several times faster than two fighting over a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_path)


@pytest.fixture
def load(tiny_lm_path: Path):
    from transformers import AutoModelForCausalLM

    return lambda: AutoModelForCausalLM.from_pretrained(tiny_lm_path)


def _config(**overrides) -> TrainConfig:
    values = {"lr": 1e-3, "batch_size": 4, "warmup_frac": 0.0, "max_grad_norm": math.inf, "device": "cpu"}
    return TrainConfig(**{**values, **overrides})


def _margins(model, tokenizer, pairs) -> torch.Tensor:
    """log π(chosen) - log π(rejected) per pair."""
    items = tokenize_pairs(tokenizer, pairs, max_length=512)
    scores = score_pairs(model, items, batch_size=8, pad_id=tokenizer.pad_token_id)
    return torch.tensor([float(c.sum() - r.sum()) for c, r in scores])


def _live_logps(model, tokenizer, prompt: str, completion_ids: list[int]) -> torch.Tensor:
    """Per-token log-probs of a completion by a direct full-sequence forward (no padding, no cache)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0].log_softmax(-1)
    return torch.stack([logits[len(prompt_ids) - 1 + j, t] for j, t in enumerate(completion_ids)])


def _params(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------------------------


def test_training_raises_the_margin_and_reward_accuracy(load, tokenizer) -> None:
    pairs = apple_pairs(8)
    model = load()
    before = _margins(model, tokenizer, pairs)
    result = train_preference(model, tokenizer, pairs, _config(epochs=10))
    after = _margins(model, tokenizer, pairs)
    assert result.steps == 20 and len(result.metrics) == 20
    assert (after - before).mean() > 1.0 and (after > before).all()
    assert result.metrics[0]["train/loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference
    assert result.metrics[0]["train/kl"] == pytest.approx(0.0, abs=1e-6)
    final = result.final
    assert final["rewards/accuracy"] >= 0.9 and final["rewards/margin"] > 0 and final["train/loss"] < 0.6
    assert final["train/kl"] > 0
    assert result.tokens == 10 * sum(
        item.num_tokens for item in tokenize_pairs(tokenizer, pairs, max_length=512)
    )


def test_masked_tokens_get_exactly_zero_gradient(load, tokenizer) -> None:
    model = load()
    pair = PreferencePair(
        apple_pairs(1)[0].prompt,
        "<|thinking|>3 plus 2<|/thinking|>#### 5",
        "<|thinking|>3 and 2<|/thinking|>#### 6",
    )
    (item,) = tokenize_pairs(tokenizer, [pair], max_length=512, mask_spans=[THINK])
    grads = []

    def keep_grad(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda g: grads.append(g.detach().clone()))

    handle = model.lm_head.register_forward_hook(keep_grad)
    try:
        train_preference(
            model, tokenizer, [pair], _config(batch_size=1, share_prompt="never", mask_spans=(THINK,))
        )
    finally:
        handle.remove()
    (grad,) = grads  # (2, K, V): rows chosen, rejected; the last K positions predict the last K tokens
    for row, (ids, weights) in enumerate(
        ((item.chosen_ids, item.chosen_weights), (item.rejected_ids, item.rejected_weights))
    ):
        offset = grad.shape[1] - len(ids)
        assert torch.count_nonzero(grad[row, :offset]) == 0  # prompt and padding positions
        for j, w in enumerate(weights):
            nonzero = torch.count_nonzero(grad[row, offset + j])
            assert (nonzero == 0) if w == 0.0 else (nonzero > 0), (row, j, tokenizer.decode([ids[j]]))
        assert 0.0 in weights and 1.0 in weights


def test_precomputed_reference_equals_a_live_reference(load, tokenizer, tiny_lm_path, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    ref_model = load()
    with torch.no_grad():  # a different model with the same tokenizer: perturb every weight
        generator = torch.Generator().manual_seed(5)
        for p in ref_model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    ref_model.save_pretrained(tmp_path / "ref")
    pairs = apple_pairs(4)
    items = tokenize_pairs(tokenizer, pairs, max_length=512)
    live = AutoModelForCausalLM.from_pretrained(tmp_path / "ref")
    for share in ("always", "never"):
        scores = score_pairs(
            ref_model, items, batch_size=3, pad_id=tokenizer.pad_token_id, share_prompt=share
        )
        for pair, item, (chosen, rejected) in zip(pairs, items, scores, strict=True):
            assert torch.allclose(
                chosen, _live_logps(live, tokenizer, pair.prompt, list(item.chosen_ids)), atol=1e-5
            )
            assert torch.allclose(
                rejected, _live_logps(live, tokenizer, pair.prompt, list(item.rejected_ids)), atol=1e-5
            )

    # the trainer's first-step rewards use these reference values: β (log π - log π_ref), before any update
    policy = load()
    expected = [
        0.1 * float(_live_logps(policy, tokenizer, p.prompt, list(i.chosen_ids)).sum() - c.sum())
        for p, i, (c, _) in zip(pairs, items, score_pairs(live, items, batch_size=4, pad_id=0), strict=True)
    ]
    result = train_preference(policy, tokenizer, pairs, _config(batch_size=4), reference=tmp_path / "ref")
    assert result.metrics[0]["rewards/chosen"] == pytest.approx(sum(expected) / 4, abs=1e-5)
    assert result.metrics[0]["train/loss"] != pytest.approx(math.log(2), abs=1e-3)  # a real reference gap


def test_checkpoint_reloads_with_the_same_logps(load, tokenizer, tmp_path) -> None:
    pairs = apple_pairs(4)
    model = load()
    result = train_preference(model, tokenizer, pairs, _config(epochs=2), out_dir=tmp_path / "ckpt")
    reloaded, reloaded_tokenizer = load_checkpoint(tmp_path / "ckpt")
    items = tokenize_pairs(reloaded_tokenizer, pairs, max_length=512)
    for (c1, r1), (c2, r2) in zip(
        score_pairs(model, items, batch_size=4, pad_id=0),
        score_pairs(reloaded, items, batch_size=4, pad_id=0),
        strict=True,
    ):
        assert torch.equal(c1, c2) and torch.equal(r1, r2)
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    state = read_state(tmp_path / "ckpt")
    assert state["steps"] == result.steps == 2 and state["reference"] == "initial policy"
    assert TrainConfig.from_dict(state["config"]) == _config(epochs=2)
    assert state["final_metrics"] == json.loads(json.dumps(result.final))
    assert len(state["log_history"]) == 2
    restore_generator(state["rng_state"]["data_order"])  # a valid generator state


def test_same_seed_gives_identical_weights(load, tokenizer) -> None:
    pairs = apple_pairs(8)
    weights = []
    for seed in (0, 0, 1):
        model = load()
        train_preference(model, tokenizer, pairs, _config(batch_size=2, epochs=1, seed=seed))
        weights.append(_params(model))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_shared_prompt_path_equals_plain_path(load, tokenizer) -> None:
    pairs = apple_pairs(6)
    items = tokenize_pairs(tokenizer, pairs, max_length=512)
    model = load()
    plain = pair_logps(model, items, pad_id=0, shared=False)
    shared = pair_logps(model, items, pad_id=0, shared=True)
    for side, lengths in ((0, [len(i.chosen_ids) for i in items]), (1, [len(i.rejected_ids) for i in items])):
        for row, n in enumerate(lengths):  # columns past a completion's length hold junk, weighted out
            assert torch.allclose(plain[side][row, :n], shared[side][row, :n], atol=1e-5)

    runs = {}
    for mode in ("always", "never"):
        model = load()
        result = train_preference(model, tokenizer, pairs, _config(batch_size=3, epochs=2, share_prompt=mode))
        runs[mode] = (result, _params(model))
    (r_shared, w_shared), (r_plain, w_plain) = runs["always"], runs["never"]
    for m_shared, m_plain in zip(r_shared.metrics, r_plain.metrics, strict=True):
        assert m_shared["train/loss"] == pytest.approx(m_plain["train/loss"], abs=1e-5)
    assert all(torch.allclose(w_shared[k], w_plain[k], atol=1e-5) for k in w_shared)


def test_batch_1_x_accumulation_4_equals_batch_4_x_accumulation_1(load, tokenizer) -> None:
    pairs = apple_pairs(8)
    runs = []
    for batch_size, grad_accum in ((1, 4), (4, 1)):
        model = load()
        result = train_preference(
            model, tokenizer, pairs, _config(batch_size=batch_size, grad_accum=grad_accum, max_grad_norm=1.0)
        )
        runs.append((result, _params(model)))
    (r1, w1), (r4, w4) = runs
    assert r1.steps == r4.steps == 2
    for a, b in zip(r1.metrics, r4.metrics, strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], abs=1e-6)
        assert a["train/grad_norm"] == pytest.approx(b["train/grad_norm"], rel=1e-4)
    # Adam divides each gradient entry by its own scale, so float noise in near-zero entries can move a
    # weight by a small fraction of lr (1e-3); 1e-5 is 1% of one step
    assert all(torch.allclose(w1[k], w4[k], atol=1e-5) for k in w1)


@pytest.mark.parametrize(
    ("loss", "extra"),
    [
        ("robust", {"label_smoothing": 0.1}),
        ("ipo", {"beta": 0.5}),
        ("hinge", {}),
        ("rpo", {"rpo_alpha": 0.5}),
        ("dpop", {"dpop_lambda": 50.0}),
    ],
)
def test_every_loss_trains(load, tokenizer, loss: str, extra: dict) -> None:
    pairs = apple_pairs(4)
    model = load()
    before = _margins(model, tokenizer, pairs)
    result = train_preference(model, tokenizer, pairs, _config(loss=loss, epochs=6, **extra))
    assert (_margins(model, tokenizer, pairs) - before).mean() > 0.5
    assert all(math.isfinite(v) for m in result.metrics for v in m.values())


def test_orpo_needs_no_reference(load, tokenizer) -> None:
    pairs = apple_pairs(4)
    model = load()
    before = _margins(model, tokenizer, pairs)
    result = train_preference(model, tokenizer, pairs, _config(loss="orpo", orpo_lambda=1.0, epochs=6))
    assert (_margins(model, tokenizer, pairs) - before).mean() > 0.5
    assert "train/kl" not in result.final and result.final["rewards/accuracy"] == 1.0


def test_lora_trains_adapters_and_merges_them(load, tokenizer) -> None:
    pairs = apple_pairs(4)
    model = load()
    start = _params(model)
    before = _margins(model, tokenizer, pairs)
    train_preference(model, tokenizer, pairs, _config(lora=True, lora_r=4, lr=5e-3, epochs=6))
    assert (_margins(model, tokenizer, pairs) - before).mean() > 0.5
    after = _params(model)
    assert set(after) == set(start)  # a plain model again: no adapter parameters left
    assert torch.equal(after["model.embed_tokens.weight"], start["model.embed_tokens.weight"])
    assert not torch.equal(
        after["model.layers.0.self_attn.q_proj.weight"], start["model.layers.0.self_attn.q_proj.weight"]
    )
    assert all(p.requires_grad for p in model.parameters())


def test_progress_reports_every_step(load, tokenizer) -> None:
    seen = []
    train_preference(
        load(), tokenizer, apple_pairs(8), _config(), progress=lambda s, t, m: seen.append((s, t, m))
    )
    assert [(s, t) for s, t, _ in seen] == [(1, 2), (2, 2)]
    assert {"train/loss", "rewards/margin", "train/kl", "train/lr", "train/grad_norm"} <= set(seen[-1][2])


def test_sft_learns_the_completions(load, tokenizer) -> None:
    examples = [(p.prompt, p.chosen) for p in apple_pairs(8)]
    model = load()
    result = train_sft(model, tokenizer, examples, SFTConfig(lr=3e-3, epochs=4, batch_size=4, device="cpu"))
    losses = [m["train/loss"] for m in result.metrics]
    assert result.steps == 8 and losses[-1] < losses[0] - 1.0
    # a TrainConfig works too; batch 2 x accumulation 2 equals batch 4 x 1 (the loss is a token mean per step)
    weights = []
    for batch_size, grad_accum in ((2, 2), (4, 1)):
        model = load()
        train_sft(model, tokenizer, examples, _config(batch_size=batch_size, grad_accum=grad_accum))
        weights.append(_params(model))
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-5) for k in weights[0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": "dpo"}, r"loss='dpo'.*'sigmoid', 'robust', 'ipo', 'hinge', 'dpop', 'rpo', 'orpo'"),
        ({"beta": 0.0}, r"beta=0.0"),
        ({"batch_size": 0}, r"batch_size=0.*integer >= 1"),
        ({"lr": -1.0}, r"lr=-1.0"),
        ({"label_smoothing": 0.1, "loss": "ipo"}, r"label_smoothing=0.1.*'ipo'"),
        ({"share_prompt": "sometimes"}, r"share_prompt='sometimes'"),
        ({"divergence_window": -1}, r"divergence_window=-1.*integer >= 0"),
        ({"mask_spans": (("<a>", "", 0.0),)}, r"mask_spans"),
        ({"dtype": "fp16"}, r"dtype='fp16'"),
    ],
)
def test_config_errors_name_field_value_and_allowed(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_config_from_dict_rejects_unknown_keys_and_normalises_lists() -> None:
    config = TrainConfig.from_dict(
        {"mask_spans": [["<|thinking|>", "<|/thinking|>", 0]], "betas": [0.9, 0.98]}
    )
    assert config.mask_spans == (("<|thinking|>", "<|/thinking|>", 0.0),) and config.betas == (0.9, 0.98)
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['bta'\]"):
        TrainConfig.from_dict({"bta": 0.1})


def test_bad_inputs_are_named(load, tokenizer) -> None:
    with pytest.raises(ValueError, match="no preference pairs"):
        train_preference(load(), tokenizer, [], _config())
    with pytest.raises(ValueError, match="must be a TrainConfig"):
        train_preference(load(), tokenizer, apple_pairs(1), SFTConfig())
    with pytest.raises(ValueError, match="not a model folder"):
        train_preference(load(), tokenizer, apple_pairs(1), _config(), reference="/nonexistent/model")


def test_divergence_window_scores_only_the_tokens_where_the_sides_differ(load, tokenizer) -> None:
    """With window 1 the first step's DPO margin is the log-ratio of the first differing token alone."""
    pair = apple_pairs(1)[0]
    items = tokenize_pairs(tokenizer, [pair], max_length=512)
    chosen, rejected = items[0].chosen_ids, items[0].rejected_ids
    split = next(i for i, (a, b) in enumerate(zip(chosen, rejected, strict=False)) if a != b)
    assert 0 < split < len(chosen) - 1  # the sides share a prefix and go on after the split
    model = load()
    live_chosen = _live_logps(model, tokenizer, pair.prompt, list(chosen))
    live_rejected = _live_logps(model, tokenizer, pair.prompt, list(rejected))
    result = train_preference(
        model, tokenizer, [pair], _config(divergence_window=1, loss="rpo", batch_size=1)
    )
    first = result.metrics[0]
    assert first["logps/chosen"] == pytest.approx(float(live_chosen[split]), abs=1e-4)
    assert first["logps/rejected"] == pytest.approx(float(live_rejected[split]), abs=1e-4)
    # RPO's NLL still covers the whole chosen completion (+ end token), per token
    assert first["train/nll"] == pytest.approx(float(-live_chosen.mean()), abs=1e-4)
    assert first["train/loss"] == pytest.approx(math.log(2) + first["train/nll"], abs=1e-4)
