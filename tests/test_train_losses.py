"""The preference losses against values computed by hand (with `math`, independently of torch)."""

from __future__ import annotations

import math

import pytest
import torch

from selfimprove.train.losses import LOSS_TYPES, log_odds, orpo_loss, preference_loss, rpo_loss

# Two examples with β = 0.5:
#   example 0: lr+ = -5 - (-6) = 1, lr- = -7 - (-6.5) = -0.5, Δ = 0.5 * 1.5 = 0.75
#   example 1: lr+ = -3 - (-3.5) = 0.5, lr- = -2 - (-4) = 2, Δ = 0.5 * (0.5 - 2) = -0.75
POLICY_CHOSEN = [-5.0, -3.0]
POLICY_REJECTED = [-7.0, -2.0]
REF_CHOSEN = [-6.0, -3.5]
REF_REJECTED = [-6.5, -4.0]
CHOSEN_LENGTHS = [4.0, 2.0]
REJECTED_LENGTHS = [10.0, 5.0]
BETA = 0.5


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def _inputs(requires_grad: bool = False):
    tensors = [
        torch.tensor(v, dtype=torch.float64)
        for v in (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)
    ]
    for t in tensors:
        t.requires_grad_(requires_grad)
    return tensors


def _loss(loss_type: str, **kwargs) -> torch.Tensor:
    return preference_loss(
        *_inputs(),
        beta=BETA,
        loss_type=loss_type,
        chosen_lengths=torch.tensor(CHOSEN_LENGTHS, dtype=torch.float64),
        rejected_lengths=torch.tensor(REJECTED_LENGTHS, dtype=torch.float64),
        **kwargs,
    )


def test_sigmoid_is_dpo() -> None:
    # -log σ(0.75) = log(1 + e^-0.75); -log σ(-0.75) = 0.75 + log(1 + e^-0.75)
    losses = _loss("sigmoid")
    assert losses.tolist() == pytest.approx([0.38687100611489994, 1.1368710061148999], abs=1e-12)
    assert losses[0].item() == pytest.approx(-_log_sigmoid(0.75), abs=1e-12)


def test_sigmoid_label_smoothing() -> None:
    # -(1-ε) log σ(Δ) - ε log σ(-Δ) with ε = 0.1: 0.9 * 0.386871 + 0.1 * 1.136871
    losses = _loss("sigmoid", label_smoothing=0.1)
    assert losses[0].item() == pytest.approx(0.46187100611489995, abs=1e-12)
    assert losses[1].item() == pytest.approx(0.9 * 1.1368710061148999 + 0.1 * 0.38687100611489994, abs=1e-12)


def test_robust() -> None:
    # [-(1-ε) log σ(Δ) + ε log σ(-Δ)] / (1 - 2ε) = (0.348184 - 0.113687) / 0.8
    losses = _loss("robust", label_smoothing=0.1)
    assert losses[0].item() == pytest.approx(0.2931210061148999, abs=1e-12)
    # with ε = 0 it is plain DPO
    assert torch.allclose(_loss("robust"), _loss("sigmoid"))


def test_ipo_uses_length_averaged_log_ratios() -> None:
    # example 0: h = 1/4 - (-0.5)/10 = 0.3, loss = (0.3 - 1/(2*0.5))^2 = 0.49
    # example 1: h = 0.5/2 - 2/5 = -0.15, loss = (-0.15 - 1)^2 = 1.3225
    assert _loss("ipo").tolist() == pytest.approx([0.49, 1.3225], abs=1e-12)
    with pytest.raises(ValueError, match="chosen_lengths"):
        preference_loss(*_inputs(), beta=BETA, loss_type="ipo")


def test_hinge() -> None:
    # max(0, 1 - Δ): 1 - 0.75 = 0.25 and 1 + 0.75 = 1.75; zero once Δ >= 1
    assert _loss("hinge").tolist() == pytest.approx([0.25, 1.75], abs=1e-12)
    big = preference_loss(
        torch.tensor([0.0]),
        torch.tensor([-10.0]),
        torch.tensor([0.0]),
        torch.tensor([0.0]),
        beta=0.5,
        loss_type="hinge",
    )
    assert big.item() == 0.0


def test_dpop_equals_dpo_while_the_chosen_ratio_is_positive_and_penalises_it_below_zero() -> None:
    # both examples have lr+ > 0 (1 and 0.5): no penalty, plain DPO
    assert torch.allclose(_loss("dpop"), _loss("sigmoid"))
    # lr+ = -6 - (-5) = -1, lr- = -4 - (-2) = -2: Δ = 0.5 * 1 = 0.5, penalty β λ max(0, 1) = 0.5 * 50 = 25
    falling = [torch.tensor([v], dtype=torch.float64) for v in (-6.0, -4.0, -5.0, -2.0)]
    loss = preference_loss(*falling, beta=0.5, loss_type="dpop")
    assert loss.item() == pytest.approx(-_log_sigmoid(0.5 - 25.0), abs=1e-9)
    assert preference_loss(*falling, beta=0.5, loss_type="dpop", dpop_lambda=0.0).item() == pytest.approx(
        -_log_sigmoid(0.5), abs=1e-12
    )
    with pytest.raises(ValueError, match="dpop_lambda must be >= 0"):
        preference_loss(*falling, beta=0.5, loss_type="dpop", dpop_lambda=-1.0)


def test_rpo_nll_can_cover_more_of_the_chosen_than_the_dpo_term() -> None:
    # DPO term on the given log-probs; NLL on a separate, longer span: -(-12) / 6 = 2 per token
    losses = rpo_loss(
        *_inputs(),
        beta=BETA,
        alpha=1.0,
        chosen_lengths=torch.tensor([6.0, 6.0], dtype=torch.float64),
        nll_chosen_logps=torch.tensor([-12.0, -12.0], dtype=torch.float64),
    )
    assert losses.tolist() == pytest.approx([0.38687100611489994 + 2.0, 1.1368710061148999 + 2.0], abs=1e-12)


def test_rpo_adds_per_token_nll_of_chosen() -> None:
    # DPO + α * (-log π(y+) / |y+|) = 0.386871 + 2 * 5/4
    losses = rpo_loss(
        *_inputs(), beta=BETA, alpha=2.0, chosen_lengths=torch.tensor(CHOSEN_LENGTHS, dtype=torch.float64)
    )
    assert losses[0].item() == pytest.approx(2.8868710061149, abs=1e-12)
    assert losses[1].item() == pytest.approx(1.1368710061148999 + 2.0 * 3.0 / 2.0, abs=1e-12)


def test_orpo() -> None:
    # NLL = 5/4; log odds(m) = m - log(1 - e^m) with m = -5/4 (chosen) and -7/10 (rejected);
    # loss = 1.25 - 0.25 * log σ(log odds(-1.25) - log odds(-0.7))
    policy_chosen, policy_rejected, _, _ = _inputs()
    losses = orpo_loss(
        policy_chosen,
        policy_rejected,
        lam=0.25,
        chosen_lengths=torch.tensor(CHOSEN_LENGTHS, dtype=torch.float64),
        rejected_lengths=torch.tensor(REJECTED_LENGTHS, dtype=torch.float64),
    )
    assert losses[0].item() == pytest.approx(1.5600683692864457, abs=1e-12)


def test_log_odds_is_stable_at_both_ends() -> None:
    values = log_odds(torch.tensor([-0.5, -1e-3, -30.0], dtype=torch.float64))
    assert values.tolist() == pytest.approx([0.43275212956718856, 6.907255237315501, -30.0], rel=1e-9)
    assert torch.isfinite(log_odds(torch.tensor([0.0, -1e-12, -800.0]))).all()


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_reference_never_gets_gradient(loss_type: str) -> None:
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = _inputs(requires_grad=True)
    losses = preference_loss(
        policy_chosen,
        policy_rejected,
        ref_chosen,
        ref_rejected,
        beta=BETA,
        loss_type=loss_type,
        chosen_lengths=torch.tensor(CHOSEN_LENGTHS, dtype=torch.float64),
        rejected_lengths=torch.tensor(REJECTED_LENGTHS, dtype=torch.float64),
    )
    losses.sum().backward()
    assert ref_chosen.grad is None and ref_rejected.grad is None
    assert policy_chosen.grad is not None and policy_chosen.grad.abs().sum() > 0


def test_dpo_gradient_matches_formula() -> None:
    # d/d(policy_chosen) of -log σ(Δ) = -β σ(-Δ)
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = _inputs(requires_grad=True)
    preference_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=BETA, loss_type="sigmoid")[
        0
    ].backward()
    assert policy_chosen.grad[0].item() == pytest.approx(-BETA / (1 + math.exp(0.75)), abs=1e-12)
    assert policy_rejected.grad[0].item() == pytest.approx(BETA / (1 + math.exp(0.75)), abs=1e-12)


def test_errors_name_the_options() -> None:
    with pytest.raises(ValueError, match=r"unknown loss_type 'dpo'.*sigmoid, robust, ipo, hinge"):
        _loss("dpo")
    with pytest.raises(ValueError, match="beta must be > 0"):
        preference_loss(*_inputs(), beta=0.0, loss_type="sigmoid")
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        _loss("robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="applies to 'sigmoid' and 'robust' only"):
        _loss("hinge", label_smoothing=0.1)
