"""Local search (first improvement, random restarts), a strong NAS-Bench-201 baseline
(White et al., "Local search is state of the art for NAS benchmarks", 2020).

Start from a uniformly random genome; propose unscored neighbours of the current genome in
random order (NB201: the 24 one-edge changes; a space without ``neighbours`` gets
``space.mutate`` children); the first neighbour that beats the current one on the run's first
objective becomes the current genome. When every neighbour of the current genome has been
scored without improvement (a local optimum), restart from a new random genome.

Multi-fidelity: a climb compares a neighbour with the point it would leave at the rung both
were told at (rung 0), so ``update`` is the default no-op on purpose: a promoted current point
scored after longer training would beat every rung-0 neighbour and stall the climb.

Determinism: ``ask`` draws from ``self.rng()`` and changes only ``asked``; ``tell`` moves the
current genome, so resume re-asks (the default ``replay``).
"""

from __future__ import annotations

from typing import Any

from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext


@register_strategy("local")
class LocalSearch(Strategy):
    name = "local"

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.current: tuple[int, str, float] | None = None  # (id, genome text, fitness)
        self.seen: set[str] = set()
        self.restarts = 0
        self.moves = 0

    def _neighbours(self, genome: str) -> list[str] | None:
        fn = getattr(self.space, "neighbours", None)
        return None if fn is None else [self.space.encode(n) for n in fn(genome)]

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            rng = self.rng()
            prop = None
            if self.current is not None:
                cid, genome, _ = self.current
                nbrs = self._neighbours(genome)
                if nbrs is None:
                    child = self.space.mutate(self.space.decode(genome), rng, self.ctx.constraints)
                    prop = self.proposal(child, operator="mutate", parents=[cid])
                else:
                    fresh = [g for g in nbrs if g not in self.seen]
                    if fresh:
                        pick = fresh[int(rng.integers(len(fresh)))]
                        prop = self.proposal(self.space.decode(pick), operator="mutate",
                                             parents=[cid])
            if prop is None:  # no current genome yet, or a local optimum: (re)start
                prop = self.proposal(self.space.random(rng, self.ctx.constraints),
                                     operator="random")
            self.asked += 1
            out.append(prop)
        return out

    def tell(self, candidate: Candidate) -> None:
        if candidate.arch:
            self.seen.add(candidate.arch)
        vals = self.values(candidate)
        if vals is None or candidate.arch is None:
            return
        fit = -self.minimised(vals)[0]
        if candidate.operator == "random" and (self.current is None or self._stuck()):
            self.current = (candidate.id, candidate.arch, fit)
            self.restarts += 1
        elif self.current is not None and candidate.parents == [self.current[0]] and (
                fit > self.current[2]):
            self.current = (candidate.id, candidate.arch, fit)
            self.moves += 1
        elif self.current is None:
            self.current = (candidate.id, candidate.arch, fit)

    def _stuck(self) -> bool:
        assert self.current is not None
        nbrs = self._neighbours(self.current[1])
        return nbrs is not None and all(g in self.seen for g in nbrs)

    def stats(self) -> dict[str, Any]:
        return {"current": self.current[0] if self.current else None,
                "restarts": self.restarts, "moves": self.moves}
