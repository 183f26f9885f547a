"""Scores untrusted candidate code: static policy, sandboxed worker, cost, proxy training.

Imports nothing else of archlore: it runs inside sandboxed workers.
"""

from evaluator.records import EvalConfig, Evaluation, StageTiming

__all__ = ["EvalConfig", "Evaluation", "StageTiming"]
