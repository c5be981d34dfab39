"""Disjoint train / val / test splits by a stable hash of a task's defining text.

A generated task belongs to the split its text hashes into, whatever the seed, so no text can ever be in
two splits: 20% of texts are test, 10% val, the other 70% train.
"""

from __future__ import annotations

import hashlib

TEST_PERCENT, VAL_PERCENT = 20, 10


def hash_split(text: str) -> str:
    """ "train", "val" or "test" for `text`, from the first 8 bytes of its BLAKE2b hash."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % 100
    if bucket < TEST_PERCENT:
        return "test"
    return "val" if bucket < TEST_PERCENT + VAL_PERCENT else "train"
