"""``pool``: candidate code scored in the evaluator's sandboxed worker pool on this machine."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from archlore.evaluator.records import EvalConfig, Evaluation
from archlore.search.backends.base import resolved
from archlore.search.records import Candidate
from archlore.search.registry import register_backend


class PoolBackend:
    """Scores candidate code in ``evaluator.pool.EvaluatorPool`` workers (one process each).

    Every candidate gets the same ``EvalConfig`` (same seed), so a re-evaluated candidate
    after a resume gets the same numbers.
    """

    name = "pool"

    def __init__(self, eval_config: EvalConfig, workers: int = 2,
                 devices: list[str] | None = None, pool: object | None = None) -> None:
        from archlore.evaluator.pool import EvaluatorPool  # lazy: spawns worker machinery

        self.eval_config = eval_config
        self.workers = workers
        self.devices = devices or ["cpu"]
        self._pool = pool if pool is not None else EvaluatorPool(workers, self.devices)

    def slots(self) -> int:
        return self.workers

    def submit(self, candidate: Candidate) -> Future[Evaluation]:
        if not candidate.code:
            return resolved(Evaluation(status="rejected", stage="policy",
                                       reason="candidate has no code to evaluate",
                                       dataset=self.eval_config.dataset,
                                       seed=self.eval_config.seed))
        return self._pool.submit(candidate.code, self.eval_config)

    def close(self, cancel: bool = False) -> None:
        """Stop the workers; ``cancel`` drops queued evaluations instead of waiting for them."""
        close = getattr(self._pool, "close", None)
        if close is not None:
            close(cancel_pending=cancel)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers, "devices": list(self.devices)}


@register_backend("pool")
def make_pool_backend(config: Any, space: Any) -> PoolBackend:
    return PoolBackend(config.eval_config(), workers=config.evaluation.workers,
                       devices=config.evaluation.devices)
