"""EvaluationBackend over the evaluator's sandboxed worker pool (the open space's backend).

Table-backed spaces (NAS-Bench-201) bring their own backend; see ``search/backend.py`` for
the protocol.
"""

from __future__ import annotations

from concurrent.futures import Future

from archlore.evaluator.records import EvalConfig, Evaluation
from archlore.search.records import Candidate


class PoolBackend:
    """Scores candidate code in ``evaluator.pool.EvaluatorPool`` workers (one process each).

    Every candidate gets the same ``EvalConfig`` (same seed), so a re-evaluated candidate
    after a resume gets the same numbers.
    """

    def __init__(self, eval_config: EvalConfig, workers: int = 2,
                 devices: list[str] | None = None, pool: object | None = None) -> None:
        from archlore.evaluator.pool import EvaluatorPool  # lazy: spawns worker machinery

        self.eval_config = eval_config
        self.workers = workers
        self._pool = pool if pool is not None else EvaluatorPool(workers, devices or ["cpu"])

    def submit(self, candidate: Candidate) -> Future[Evaluation]:
        if not candidate.code:
            fut: Future[Evaluation] = Future()
            fut.set_result(Evaluation(status="rejected", stage="policy",
                                      reason="candidate has no code to evaluate",
                                      dataset=self.eval_config.dataset,
                                      seed=self.eval_config.seed))
            return fut
        return self._pool.submit(candidate.code, self.eval_config)

    def close(self, cancel: bool = False) -> None:
        """Stop the workers; ``cancel`` drops queued evaluations (after Ctrl-C) instead of
        waiting for them."""
        close = getattr(self._pool, "close", None)
        if close is not None:
            close(cancel_pending=cancel)
