"""Multi-fidelity search: asynchronous successive halving (ASHA) over rungs of epochs.

Every candidate is scored at rung 0 (the cheapest budget). A candidate that finished rung
``r`` is promoted to rung ``r + 1`` as soon as it is among the best ``floor(n_r / eta)`` of the
``n_r`` results at rung ``r`` (ASHA, Li et al. 2020), where "best" is the order of the run's
objectives: Pareto rank first (``pareto.non_dominated_sort``), then NSGA-II crowding distance
inside the rank (extremes first), then candidate id. Invalid results are never promoted.

``Ladder`` is the scheduling logic only (pure, deterministic given the order of ``record``
calls, tested on its own); the engine (``search.engine``) submits the promotions it returns,
stores every rung's result (``RunStore.add_rung``) and re-tells the front with the highest
rung each candidate reached. Ray Tune's and Optuna's ASHA schedulers rank by one scalar
metric and own the trial loop; here promotion is by Pareto rank and the engine owns the loop,
so the ~60 lines below are kept instead of adapting either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from archlore.search.objectives import Objective
from archlore.search.pareto import crowding_distance, non_dominated_sort


def pareto_order(values: dict[int, list[float]], objectives: list[Objective]) -> list[int]:
    """Candidate ids best first: Pareto rank, then crowding distance (larger first), then id."""
    ids = sorted(values)
    if not ids:
        return []
    pts = np.array([[o.minimised(values[i][k]) for k, o in enumerate(objectives)] for i in ids])
    ranks = non_dominated_sort(pts)
    crowd = np.zeros(len(ids))
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        crowd[members] = crowding_distance(pts[members])
    return [ids[j] for j in sorted(range(len(ids)), key=lambda j: (ranks[j], -crowd[j], ids[j]))]


@dataclass
class Ladder:
    """ASHA rungs. ``record(cid, rung, values)`` after each result (``values`` None when the
    candidate failed there); ``promotions()`` the (cid, rung) jobs now due, each once."""

    rungs: list[float]  # epochs per rung
    reduction: int
    objectives: list[Objective]
    results: list[dict[int, list[float] | None]] = field(default_factory=list)
    issued: set[tuple[int, int]] = field(default_factory=set)  # (cid, rung) jobs handed out

    def __post_init__(self) -> None:
        if len(self.rungs) < 1 or self.reduction < 2:
            raise ValueError("need at least one rung and a reduction factor >= 2")
        self.results = [{} for _ in self.rungs]

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    def record(self, cid: int, rung: int, values: list[float] | None) -> None:
        self.results[rung][cid] = None if values is None else list(values)
        self.issued.add((cid, rung))

    def mark_issued(self, cid: int, rung: int) -> None:
        self.issued.add((cid, rung))

    def highest(self, cid: int) -> int | None:
        """The highest rung at which ``cid`` has a valid result."""
        for r in range(self.top, -1, -1):
            if self.results[r].get(cid) is not None:
                return r
        return None

    def promotions(self) -> list[tuple[int, int]]:
        """Jobs due now, lower rungs first, best first within a rung."""
        out: list[tuple[int, int]] = []
        for r in range(self.top):
            done = self.results[r]
            k = math.floor(len(done) / self.reduction)
            if k == 0:
                continue
            valid = {c: v for c, v in done.items() if v is not None}
            for cid in pareto_order(valid, self.objectives)[:k]:
                if (cid, r + 1) not in self.issued:
                    self.issued.add((cid, r + 1))
                    out.append((cid, r + 1))
        return out

    def counts(self) -> list[int]:
        return [len(d) for d in self.results]


def rung_config(base: Any, rungs: list[float], rung: int) -> Any:
    """The ``EvalConfig`` of ``rung``: the run's recipe with that rung's epochs. A recipe
    ``max_steps`` caps the top rung; lower rungs get the same fraction of it as of epochs."""
    epochs = rungs[rung]
    steps = base.max_steps
    if steps is not None:
        steps = max(1, round(steps * epochs / rungs[-1]))
    return base.model_copy(update={"epochs": epochs, "max_steps": steps})


def tag(ev: Any, rung: int, cfg: Any) -> Any:
    """The evaluation marked with the rung it was scored at (``metrics``: ``rung``,
    ``fidelity_epochs`` and ``fidelity_steps`` when capped), so rungs never mix silently."""
    extra = {"rung": float(rung), "fidelity_epochs": float(cfg.epochs)}
    if cfg.max_steps is not None:
        extra["fidelity_steps"] = float(cfg.max_steps)
    return ev.model_copy(update={"metrics": {**ev.metrics, **extra}})


@dataclass
class FidelityPlan:
    """What the engine needs for multi-fidelity: the ladder, the run's ``EvalConfig`` and a
    ``submit(code, cfg) -> Future[Evaluation]`` that scores with a given config
    (``search.proxy.submitter(backend)``)."""

    ladder: Ladder
    base_cfg: Any
    submit: Callable[[str, Any], Future]

    def config(self, rung: int) -> Any:
        return rung_config(self.base_cfg, self.ladder.rungs, rung)


__all__ = ["FidelityPlan", "Ladder", "pareto_order", "rung_config", "tag"]
