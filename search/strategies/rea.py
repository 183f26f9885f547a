"""Regularized evolution (REA; Real et al., AAAI 2019), as benchmarked on NAS-Bench-201.

A population of the ``population`` most recent valid results; each child mutates the best
(by validation accuracy) of ``sample`` members drawn without replacement; the oldest member
dies when a child joins (age-based removal, not worst-based). The first ``population``
proposals are random genotypes. Defaults P=10, S=3 are the NAS-Bench-201 paper's
(Dong & Yang, 2020, App.: ``--ea_population 10 --ea_sample_size 3``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext
from pydantic import BaseModel, ConfigDict, Field


class REAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    population: int = Field(10, ge=1)  # P
    sample: int = Field(3, ge=1)  # S (tournament size)


@register_strategy("rea")
class RegularizedEvolution(Strategy):
    """Fitness is the run's first objective (validation accuracy by default)."""

    name = "rea"
    Options = REAOptions

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.population_size = self.opts.population
        self.sample_size = self.opts.sample
        # (candidate id, arch, fitness: the first objective, larger is better), oldest left
        self.population: deque[tuple[int, str, float]] = deque()
        self.removed: list[int] = []  # ids aged out, oldest first (for reports and tests)

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            rng = self.rng()
            if self.asked < self.population_size or not self.population:
                if self.asked >= self.population_size and not self.population:
                    break  # warm-up proposals still in flight or all failed: wait for results
                genome = self.space.random(rng, self.ctx.constraints)
                out.append(self.proposal(genome, operator="random"))
            else:
                k = min(self.sample_size, len(self.population))
                picks = rng.choice(len(self.population), size=k, replace=False)
                # ties broken by the earlier draw: deterministic
                cid, parent, _ = max((self.population[int(i)] for i in picks), key=lambda m: m[2])
                child = self.space.mutate(self.space.decode(parent), rng, self.ctx.constraints)
                out.append(self.proposal(child, operator="mutate", parents=[cid]))
            self.asked += 1
        return out

    def tell(self, candidate: Candidate) -> None:
        vals = self.values(candidate)
        if vals is None or candidate.arch is None:
            return  # duplicates and failures do not join the population
        self.population.append((candidate.id, candidate.arch, -self.minimised(vals)[0]))
        if len(self.population) > self.population_size:
            self.removed.append(self.population.popleft()[0])

    def update(self, candidate: Candidate) -> None:
        """A promoted member's fitness becomes its higher-rung result (aged-out: nothing)."""
        vals = self.values(candidate)
        if vals is None:
            return
        for k, (cid, arch, _) in enumerate(self.population):
            if cid == candidate.id:
                self.population[k] = (cid, arch, -self.minimised(vals)[0])

    def stats(self) -> dict[str, Any]:
        best = max((m[2] for m in self.population), default=None)
        return {"population": len(self.population), "aged_out": len(self.removed),
                "best_in_population": best}
