"""How the engine gets candidates scored: a pool of sandboxed trainers, or a lookup table."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol

from archlore.evaluator.records import Evaluation
from archlore.search.records import Candidate


class EvaluationBackend(Protocol):
    """Scores candidates asynchronously. ``submit`` never raises for a bad candidate:
    the future resolves to an Evaluation whose status says what went wrong."""

    workers: int  # how many candidates may be in flight at once

    def submit(self, candidate: Candidate) -> Future[Evaluation]: ...

    def close(self) -> None: ...
