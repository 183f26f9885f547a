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
from archlore.search.strategies.random_search import proposal_for


@register_strategy("rea")
class RegularizedEvolution(Strategy):
    """Options (``ctx.options``): ``population`` (P, default 10), ``sample`` (S, default 3)."""

    name = "rea"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.population_size = int(ctx.options.get("population", 10))
        self.sample_size = int(ctx.options.get("sample", 3))
        if self.population_size < 1 or not 1 <= self.sample_size:
            raise ValueError(f"REA needs population >= 1 and sample >= 1, got "
                             f"P={self.population_size}, S={self.sample_size}")
        # (candidate id, arch, val_acc), oldest on the left
        self.population: deque[tuple[int, str, float]] = deque()
        self.removed: list[int] = []  # ids aged out, oldest first (for reports and tests)

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            rng = self.rng()
            if self.asked < self.population_size or not self.population:
                if self.asked >= self.population_size and not self.population:
                    break  # warm-up proposals still in flight or all failed: wait for results
                arch = self.ctx.space.sample(rng)
                out.append(proposal_for(self.ctx, arch, operator="random"))
            else:
                k = min(self.sample_size, len(self.population))
                picks = rng.choice(len(self.population), size=k, replace=False)
                # ties broken by the earlier draw: deterministic
                cid, parent, _ = max((self.population[int(i)] for i in picks), key=lambda m: m[2])
                arch = self.ctx.space.mutate(parent, rng)
                out.append(proposal_for(self.ctx, arch, operator="mutate", parents=[cid]))
            self.asked += 1
        return out

    def tell(self, candidate: Candidate) -> None:
        if candidate.status != "evaluated" or not candidate.valid or candidate.arch is None:
            return  # duplicates and failures do not join the population
        assert candidate.evaluation is not None and candidate.evaluation.val_acc is not None
        self.population.append((candidate.id, candidate.arch, candidate.evaluation.val_acc))
        if len(self.population) > self.population_size:
            self.removed.append(self.population.popleft()[0])

    def stats(self) -> dict[str, Any]:
        best = max((m[2] for m in self.population), default=None)
        return {"population": len(self.population), "aged_out": len(self.removed),
                "best_in_population": best}
