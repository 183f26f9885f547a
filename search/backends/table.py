"""``table``: candidates answered from a precomputed benchmark table (NAS-Bench-201).

The space opens its table (``space.open_table(config)``); any object with
``evaluate(arch) -> Evaluation`` and a ``dataset`` attribute will do. Futures resolve at once.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol

from archlore.evaluator.records import Evaluation
from archlore.search.backends.base import resolved
from archlore.search.records import Candidate
from archlore.search.registry import register_backend


class ScoreTable(Protocol):
    dataset: str

    def evaluate(self, arch: str) -> Evaluation: ...


class TableBackend:
    """Looks candidates up by ``candidate.arch``; ``queries`` counts lookups."""

    name = "table"

    def __init__(self, table: ScoreTable, workers: int = 1) -> None:
        self.table = table
        self.workers = workers
        self.queries = 0

    def slots(self) -> int:
        return self.workers

    def submit(self, candidate: Candidate) -> Future[Evaluation]:
        self.queries += 1
        if not candidate.arch:
            return resolved(Evaluation(status="rejected", stage="build",
                                       dataset=self.table.dataset,
                                       reason="candidate has no arch string for the table"))
        return resolved(self.table.evaluate(candidate.arch))

    def close(self, cancel: bool = False) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers, "queries": self.queries}


@register_backend("table")
def make_table_backend(config: Any, space: Any) -> TableBackend:
    open_table = getattr(space, "open_table", None)
    if open_table is None:
        raise ValueError(f"the {space.name} space has no table; use --backend pool")
    # one lookup at a time: a table answers instantly, so more slots would only change the
    # bounded-staleness schedule (and the published figures), not the speed
    return TableBackend(open_table(config), workers=1)
