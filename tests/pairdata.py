"""Hand-made preference pairs for the trainer tests: a right and an off-by-one sum per prompt."""

from __future__ import annotations

from selfimprove.records import PreferencePair


def apple_pairs(n: int) -> list[PreferencePair]:
    """`n` pairs; the chosen ends the solution with `#### answer`, the rejected stops after a wrong sum."""
    out = []
    for k in range(n):
        a, b = 3 + 7 * k, 2 + 5 * k
        prompt = f"Question: Tom has {a} apples and buys {b} more. How many apples does he have?\nAnswer:\n"
        out.append(
            PreferencePair(
                prompt, f"He has {a}+{b}={a + b} apples.\n#### {a + b}", f"He has {a}+{b}={a + b + 1}.\n"
            )
        )
    return out
