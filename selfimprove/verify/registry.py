"""Verifiers by name, as task recipes refer to them (`verifier = "math"`)."""

from __future__ import annotations

from selfimprove.verify.base import Verifier

# "math" also checks every <<a*b=c>> calculator annotation; "math-answer" checks the final answer only.
VERIFIERS = ("math", "math-answer", "code")


def make_verifier(name: str) -> Verifier:
    """The verifier a recipe names; unknown names raise listing the known ones."""
    if name in ("math", "math-answer"):
        from selfimprove.verify.math import MathVerifier

        return MathVerifier(check_annotations=name == "math")
    if name == "code":
        from selfimprove.verify.code import CodeVerifier

        return CodeVerifier()
    raise ValueError(f"unknown verifier {name!r}; choose from {list(VERIFIERS)}")
