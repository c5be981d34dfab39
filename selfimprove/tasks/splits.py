"""Disjoint train / val / test splits by a stable hash of a task's defining text.

A generated task belongs to the split its text hashes into, whatever the seed, so no text can ever be in
two splits: 20% of texts are test, 10% val, the other 70% train.
"""

from __future__ import annotations

import hashlib

TEST_PERCENT, VAL_PERCENT = 20, 10
# "val" is a third hash bucket drawn from the training distribution, for choosing hyperparameters
# without touching the held-out "test" split.
SPLITS = ("train", "val", "test")


def hash_split(text: str) -> str:
    """ "train", "val" or "test" for `text`, from the first 8 bytes of its BLAKE2b hash."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % 100
    if bucket < TEST_PERCENT:
        return "test"
    return "val" if bucket < TEST_PERCENT + VAL_PERCENT else "train"


def check_generator_request(
    split: str, n: int, *, min_steps: int, max_steps: int, steps: int | None, lowest: int, highest: int
) -> None:
    """Raise ValueError naming the argument when a generator call asks for something it cannot make:
    an unknown split, a bad count, or step counts outside lowest..highest."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed: {', '.join(SPLITS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r}; allowed: an integer >= 0")
    for key, value in (("min_steps", min_steps), ("max_steps", max_steps), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{key}={value!r}; allowed: an integer in {lowest}..{highest}")
        if value is not None and not lowest <= value <= highest:
            raise ValueError(f"{key}={value!r}; allowed: {lowest}..{highest}")
    if steps is None and min_steps > max_steps:
        raise ValueError(f"min_steps={min_steps} > max_steps={max_steps}; allowed: min_steps <= max_steps")
