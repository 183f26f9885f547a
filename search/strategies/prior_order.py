"""The prior alone: query NAS-Bench-201 cells in the order of the knowledge prior's score
(``search.prior``: op values computed from the run's ideas), best first, never looking at a
result. The baseline that says how much of a knowledge-driven search is the knowledge.
NB201 space only."""

from __future__ import annotations

from typing import Literal

from archlore.search.prior import OpPrior, prior_order
from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext
from archlore.search.strategies.fairnad import load_ideas
from pydantic import BaseModel, ConfigDict


class PriorOrderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prior: Literal["knowledge", "flat"] = "knowledge"


@register_strategy("prior")
class PriorOrder(Strategy):
    name = "prior"
    Options = PriorOrderOptions

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        if self.space.name != "nb201":
            raise ValueError(f"the prior strategy supports the nb201 space only, not "
                             f"{self.space.name!r}")
        ideas = list(ctx.ideas if ctx.ideas is not None else load_ideas(ctx.knowledge))
        prior = OpPrior.from_ideas(ideas) if self.opts.prior == "knowledge" else OpPrior.flat()
        self.order = prior_order(prior)

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            if self.asked >= len(self.order):
                break
            out.append(self.proposal(self.order[self.asked], operator="init"))
            self.asked += 1
        return out

    def tell(self, candidate: Candidate) -> None:
        pass
