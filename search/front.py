"""The Pareto front of a run over its objectives, and its normalised hypervolume.

Values are raw objective units. The hypervolume box per objective runs from the objective's
ideal value (accuracy 1.0, zero cost) to a reference: given, or -- for a cost without one --
fixed at 4x the first valid candidate's value, so the first front sits well inside the box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from archlore.search.feedback import objective_values
from archlore.search.objectives import Objective
from archlore.search.pareto import non_dominated_mask, normalised_hypervolume_k
from archlore.search.records import Candidate


def _ideal(o: Objective) -> float:
    if o.ideal is not None:
        return o.ideal
    return 1.0 if o.maximise else 0.0


@dataclass
class FrontTracker:
    objectives: list[Objective]
    refs: list[float | None]  # per objective, raw units; None: fixed from the first point
    ids: list[int] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    hypervolume: float = 0.0
    best: float | None = None  # best value of the first objective so far

    def __post_init__(self) -> None:
        if len(self.refs) != len(self.objectives):
            raise ValueError("one hypervolume reference per objective")
        self.refs = list(self.refs)

    def add(self, cid: int, vals: list[float]) -> bool:
        """Add one valid point; True if it is on the front afterwards."""
        for k, o in enumerate(self.objectives):
            if self.refs[k] is None:
                self.refs[k] = max(4.0 * vals[k], 1e-9) if not o.maximise else 0.0
        first = self.objectives[0]
        v0 = vals[0]
        if self.best is None or (v0 > self.best if first.maximise else v0 < self.best):
            self.best = v0
        ids, values = self.ids + [cid], self.values + [list(vals)]
        pts = np.array([[o.minimised(v[k]) for k, o in enumerate(self.objectives)]
                        for v in values])
        keep = non_dominated_mask(pts)
        self.ids = [i for i, k in zip(ids, keep, strict=True) if k]
        self.values = [v for v, k in zip(values, keep, strict=True) if k]
        self.hypervolume = normalised_hypervolume_k(
            self.values, [o.maximise for o in self.objectives],
            [_ideal(o) for o in self.objectives], [float(r) for r in self.refs])  # type: ignore[arg-type]
        return bool(keep[-1])

    def add_candidate(self, c: Candidate) -> bool:
        vals = objective_values(c, self.objectives)
        if vals is None:
            return False
        return self.add(c.id, [vals[o.name] for o in self.objectives])


def front_of(cands: list[Candidate], objectives: list[Objective]) -> list[Candidate]:
    """The valid candidates on the Pareto front over ``objectives``, id order."""
    valid = [(c, objective_values(c, objectives)) for c in cands]
    valid = [(c, v) for c, v in valid if v is not None]
    if not valid:
        return []
    pts = np.array([[o.minimised(v[o.name]) for o in objectives] for _, v in valid])
    keep = non_dominated_mask(pts)
    return [c for (c, _), k in zip(valid, keep, strict=True) if k]


def hypervolume_curve(cands: list[Candidate], objectives: list[Objective],
                      refs: list[float | None]) -> np.ndarray:
    """Normalised hypervolume after each tell (candidate-id order), shape (n,)."""
    tracker = FrontTracker(objectives, refs)
    out = np.zeros(len(cands))
    for i, c in enumerate(cands):
        tracker.add_candidate(c)
        out[i] = tracker.hypervolume
    return out
