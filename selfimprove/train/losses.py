"""Preference losses of the DPO family, as pure per-example tensor functions (DESIGN §6).

Every function takes summed completion log-probabilities, one value per example, and returns one loss per
example; the forward pass, the reference model, token masks and batching live in the trainer. Symbols:

    lr+ = log π_θ(y+|x) − log π_ref(y+|x)      chosen log-ratio
    lr− = log π_θ(y−|x) − log π_ref(y−|x)      rejected log-ratio
    Δ   = β (lr+ − lr−)                         the implicit reward margin of DPO

`docs/losses.md` has the same formulas as a table with one row per loss and when to use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "robust", "ipo", "hinge", "dpop")


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float,
    loss_type: str,
    label_smoothing: float = 0.0,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    dpop_lambda: float = 50.0,
) -> torch.Tensor:
    """Per-example preference loss, shape (B,), for `loss_type` in LOSS_TYPES.

    - `sigmoid` (DPO, Rafailov et al. 2023, https://arxiv.org/abs/2305.18290 Eq. 7), with conservative
      label smoothing ε (Mitchell 2023, https://ericmitchell.ai/cdpo.pdf):
          −(1−ε) log σ(Δ) − ε log σ(−Δ)
    - `robust` (rDPO, Chowdhury et al. 2024, https://arxiv.org/abs/2403.00409), unbiased under a label
      flip rate ε < 1/2:
          [−(1−ε) log σ(Δ) + ε log σ(−Δ)] / (1 − 2ε)
    - `ipo` (Azar et al. 2023, https://arxiv.org/abs/2310.12036 Eq. 17, β in the role of τ):
          (lr̄+ − lr̄− − 1/(2β))²   with lr̄± = lr± / |y±|, the length-averaged log-ratios
    - `hinge` (SLiC, Zhao et al. 2023, https://arxiv.org/abs/2305.10425; RSO, Liu et al. 2023,
      https://arxiv.org/abs/2309.06657):
          max(0, 1 − Δ)
    - `dpop` (DPO-Positive, Pal et al. 2024, https://arxiv.org/abs/2402.13228 Eq. 3):
          −log σ(β (lr+ − lr− − λ · max(0, −lr+)))
      DPO can lower the chosen completion's likelihood as long as the rejected one falls faster, and it
      does when the two differ in a few tokens (a digit); the penalty stops lr+ from going below 0.

    The reference log-probs are detached: they never receive gradient. `chosen_lengths`/`rejected_lengths`
    (B,) are the numbers of (weighted) completion tokens; IPO needs them.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    _check_label_smoothing(loss_type, label_smoothing)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps.detach()  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps.detach()  # (B,)

    if loss_type == "ipo":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError(
                "loss_type 'ipo' needs chosen_lengths and rejected_lengths (it averages per token)"
            )
        # IPO's h is a sequence log-ratio; summed over tokens it grows with length, and so would the squared
        # loss. Averaging per token (as TRL does, confirmed by the IPO authors) keeps β comparable.
        chosen_mean = chosen_logratios / chosen_lengths.clamp(min=1)  # (B,)
        rejected_mean = rejected_logratios / rejected_lengths.clamp(min=1)  # (B,)
        h = chosen_mean - rejected_mean
        return (h - 1 / (2 * beta)) ** 2

    delta = beta * (chosen_logratios - rejected_logratios)  # (B,)
    if loss_type == "dpop":
        if dpop_lambda < 0:
            raise ValueError(f"dpop_lambda must be >= 0, got {dpop_lambda}")
        return -F.logsigmoid(delta - beta * dpop_lambda * torch.relu(-chosen_logratios))
    if loss_type == "sigmoid":
        return -(1 - label_smoothing) * F.logsigmoid(delta) - label_smoothing * F.logsigmoid(-delta)
    if loss_type == "robust":
        return (-(1 - label_smoothing) * F.logsigmoid(delta) + label_smoothing * F.logsigmoid(-delta)) / (
            1 - 2 * label_smoothing
        )
    return torch.relu(1 - delta)  # hinge


def rpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float,
    alpha: float,
    chosen_lengths: torch.Tensor,
    label_smoothing: float = 0.0,
    nll_chosen_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """RPO (Pang et al. 2024, Iterative Reasoning Preference Optimization, https://arxiv.org/abs/2404.19733).

        DPO(Δ) + α · NLL(y+),   NLL(y+) = −log π_θ(y+|x) / |y+|   (per token of the chosen completion)

    The NLL term keeps the chosen solutions likely; without it DPO on reasoning pairs tends to lower both.
    `nll_chosen_logps` (with `chosen_lengths` its token counts) lets the NLL cover more of the chosen than
    the DPO term does, as when the DPO term is focused on where the two completions diverge.
    """
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    dpo = preference_loss(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        beta=beta,
        loss_type="sigmoid",
        label_smoothing=label_smoothing,
    )
    nll_logps = policy_chosen_logps if nll_chosen_logps is None else nll_chosen_logps
    return dpo + alpha * (-nll_logps / chosen_lengths.clamp(min=1))


def log_odds(mean_logps: torch.Tensor) -> torch.Tensor:
    """log(p / (1 − p)) from log p, stable for p near 0 and near 1."""
    # p = 1 exactly would make the odds infinite; a length-averaged log-prob of a real sequence is < 0, the
    # clamp only guards the degenerate case of a model certain of every token.
    mean_logps = mean_logps.clamp(max=-1e-6)
    # log(1 − e^x): expm1 is exact near 0, log1p(−e^x) is exact for very negative x (Mächler 2012)
    log1m_p = torch.where(
        mean_logps > -0.6931471805599453,
        torch.log(-torch.expm1(mean_logps)),
        torch.log1p(-torch.exp(mean_logps)),
    )
    return mean_logps - log1m_p


def orpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    *,
    lam: float,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
) -> torch.Tensor:
    """ORPO (Hong et al. 2024, https://arxiv.org/abs/2403.07691 Eq. 6): reference-free.

    NLL(y+) − λ · log σ(log odds(y+) − log odds(y−)),   odds(y) = P(y) / (1 − P(y)),
    P(y) = exp(log π_θ(y|x) / |y|)   (length-averaged),   NLL(y+) = −log π_θ(y+|x) / |y+|
    """
    if lam < 0:
        raise ValueError(f"orpo lambda must be >= 0, got {lam}")
    chosen_mean = policy_chosen_logps / chosen_lengths.clamp(min=1)  # (B,)
    rejected_mean = policy_rejected_logps / rejected_lengths.clamp(min=1)  # (B,)
    log_odds_ratio = log_odds(chosen_mean) - log_odds(rejected_mean)
    return -chosen_mean - lam * F.logsigmoid(log_odds_ratio)


def _check_label_smoothing(loss_type: str, label_smoothing: float) -> None:
    if loss_type == "sigmoid" and not 0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing for 'sigmoid' must be in [0, 0.5], got {label_smoothing}")
    if loss_type == "robust" and not 0 <= label_smoothing < 0.5:
        raise ValueError(
            f"label_smoothing for 'robust' must be in [0, 0.5) (it divides by 1 − 2ε), got {label_smoothing}"
        )
    if loss_type in ("ipo", "hinge") and label_smoothing != 0:
        raise ValueError(
            f"label_smoothing applies to 'sigmoid' and 'robust' only; {loss_type!r} got {label_smoothing}"
        )
