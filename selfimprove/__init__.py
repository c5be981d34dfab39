"""selfimprove: a reasoning self-improvement engine.

tasks -> searches -> verified step-level preference pairs -> iterative DPO -> evaluation -> next iteration.
"""

__version__ = "0.1.0"
