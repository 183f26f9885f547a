"""Random search: every proposal a uniformly random genotype of the space."""

from __future__ import annotations

from typing import Any

from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext


def proposal_for(ctx: StrategyContext, arch: str, **fields: Any) -> Proposal:
    """A Proposal carrying ``arch``; spaces that are scored from code (``needs_code``, the
    default) also get the rendered ``Net`` source."""
    space = ctx.space
    code = space.render(arch) if getattr(space, "needs_code", True) else None
    return Proposal(arch=arch, code=code, mode="none", **fields)


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform random sampling via ``space.sample(rng)``; keeps only the best result."""

    name = "random"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.best: Candidate | None = None
        self.told = 0

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            arch = self.ctx.space.sample(self.rng())
            self.asked += 1
            out.append(proposal_for(self.ctx, arch, operator="random"))
        return out

    def tell(self, candidate: Candidate) -> None:
        self.told += 1
        if candidate.status == "evaluated" and candidate.valid:
            assert candidate.evaluation is not None
            if self.best is None or candidate.evaluation.val_acc > self.best.evaluation.val_acc:
                self.best = candidate

    def stats(self) -> dict[str, Any]:
        best = self.best.evaluation.val_acc if self.best and self.best.evaluation else None
        return {"told": self.told, "best_val_acc": best}
