"""Held-out evaluation: greedy accuracy, maj@k and pass@k of a policy on a task recipe."""

from selfimprove.eval.evaluate import EvalReport, GroupMetrics, TaskRecord, evaluate
from selfimprove.eval.metrics import majority_vote, pass_at_k

__all__ = ["EvalReport", "GroupMetrics", "TaskRecord", "evaluate", "majority_vote", "pass_at_k"]
