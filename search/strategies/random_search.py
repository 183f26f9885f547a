"""Random search: every proposal a uniformly random genome of the space."""

from __future__ import annotations

from typing import Any

from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform random sampling via ``space.random``; keeps only the best result."""

    name = "random"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.best: tuple[int, float] | None = None  # (candidate id, first objective, minimised)
        self.told = 0

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            genome = self.space.random(self.rng(), self.ctx.constraints)
            self.asked += 1
            out.append(self.proposal(genome, operator="random"))
        return out

    def tell(self, candidate: Candidate) -> None:
        self.told += 1
        vals = self.values(candidate)
        if vals is not None:
            key = self.minimised(vals)[0]
            if self.best is None or key < self.best[1]:
                self.best = (candidate.id, key)

    def update(self, candidate: Candidate) -> None:
        """Multi-fidelity: the best so far is recomputed with the higher-rung result."""
        vals = self.values(candidate)
        if vals is None:
            return
        key = self.minimised(vals)[0]
        if self.best is not None and self.best[0] == candidate.id:
            self.best = (candidate.id, key)  # its own score moved; others are not re-read
        elif self.best is None or key < self.best[1]:
            self.best = (candidate.id, key)

    def stats(self) -> dict[str, Any]:
        return {"told": self.told, "best_id": self.best[0] if self.best else None}
