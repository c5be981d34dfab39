"""Sample-based accuracy metrics: the unbiased pass@k estimator and majority voting (maj@k).

pass@k follows Chen et al. 2021, "Evaluating Large Language Models Trained on Code"
(https://arxiv.org/abs/2107.03374), eq. 1 and its numerically stable product form (Figure 3):
with n samples of which c are correct, pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i).

maj@k (self-consistency, Wang et al. 2022, https://arxiv.org/abs/2203.11171) answers with the most
frequent final answer among k samples. Answers are clustered with the math verifier's `is_equivalent`,
so "0.5" and "1/2" vote together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from selfimprove.verify.math import is_equivalent

__all__ = ["majority_vote", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    failure = 1.0
    for i in range(n - c + 1, n + 1):
        failure *= 1.0 - k / i
    return 1.0 - failure


def majority_vote(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool] = is_equivalent
) -> str | None:
    """The most frequent answer, counting equivalent answers as one; None when no answer was given.

    Missing answers (None) abstain. Each answer joins the first cluster whose first member it equals;
    ties go to the cluster seen first, and the winner is that cluster's first answer, so the result is
    deterministic and is an element of `answers`.
    """
    clusters: list[tuple[str, int]] = []  # (first answer, votes)
    for answer in answers:
        if answer is None:
            continue
        for i, (head, votes) in enumerate(clusters):
            if answer == head or equivalent(answer, head):
                clusters[i] = (head, votes + 1)
                break
        else:
            clusters.append((answer, 1))
    if not clusters:
        return None
    best = max(votes for _, votes in clusters)
    return next(head for head, votes in clusters if votes == best)
