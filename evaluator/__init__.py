"""Scores untrusted candidate code: static policy, sandboxed worker, cost, proxy training.

Imports nothing else of archlore: it runs inside sandboxed workers. Importing this package
does not import torch; workers do.
"""

from archlore.evaluator.containment import containment_report
from archlore.evaluator.data import dataset_info, list_datasets
from archlore.evaluator.policy import PolicyViolation, check_source
from archlore.evaluator.pool import EvaluatorPool
from archlore.evaluator.records import EvalConfig, Evaluation, StageTiming
from archlore.evaluator.sandbox import run_candidate


def evaluate(code: str, cfg: EvalConfig | None = None) -> Evaluation:
    """Score one candidate source (blocking): policy, then a contained worker process.

    Never raises for a bad candidate: the Evaluation's status and reason say what happened.
    """
    return run_candidate(code, cfg or EvalConfig())


__all__ = [
    "EvalConfig", "Evaluation", "EvaluatorPool", "PolicyViolation", "StageTiming",
    "check_source", "containment_report", "dataset_info", "evaluate", "list_datasets",
]
