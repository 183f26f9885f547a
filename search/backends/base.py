"""The evaluation-backend protocol: how the engine gets candidates scored.

A backend scores candidates asynchronously. The engine calls ``submit`` for every candidate
that needs an evaluation (at most ``slots()`` in flight), waits on the futures, and calls
``close(cancel=...)`` once at the end (``cancel=True`` after Ctrl-C or a stop: drop what is
queued instead of waiting for it). ``submit`` never raises for a bad candidate: the future
resolves to an ``Evaluation`` whose status says what went wrong; an exception in the future
is a backend fault, which the engine records as ``failed`` at stage ``worker``.

Backends are registered by name (``register_backend``) with a factory
``factory(config: SearchConfig, space: SearchSpace) -> EvaluationBackend``; a space names the
backend it needs by default (``space.default_backend``: ``pool`` for code, ``table`` for
NAS-Bench-201).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from archlore.evaluator.records import Evaluation
from archlore.search.records import Candidate


@runtime_checkable
class EvaluationBackend(Protocol):
    name: str

    def slots(self) -> int:
        """How many candidates may be in flight now (a cluster's count may change)."""
        ...

    def submit(self, candidate: Candidate) -> Future[Evaluation]: ...

    def close(self, cancel: bool = False) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What progress views show: e.g. workers, nodes, slots in use."""
        ...


def resolved(ev: Evaluation) -> Future[Evaluation]:
    """A future that already holds ``ev`` (for answers that need no worker)."""
    fut: Future[Evaluation] = Future()
    fut.set_result(ev)
    return fut
