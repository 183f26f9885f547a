"""Pareto utilities for 2 or 3 objectives, vectorised with numpy.

Convention: every function takes ``points`` of shape ``(n, k)`` in *minimisation* form
(``Objective.minimised`` turns an accuracy into its negative). ``objectives(acc, mmacs)`` is
the 2-objective shorthand for (validation accuracy up, MACs down).

- ``non_dominated_mask``: O(n log n) for k = 2 (lexicographic sort + running minimum), a
  pairwise check for k = 3.
- ``non_dominated_sort``: front ranks by repeated peeling (rank 0 = the Pareto front).
- ``crowding_distance``: NSGA-II crowding distance inside one front (inf at the extremes).
- ``hypervolume``: the volume dominated by the points, bounded by a reference point (exact:
  a sweep for k = 2, slices of 2-D fronts for k = 3).
- ``normalised_hypervolume_k``: hypervolume in the unit box spanned by each objective's ideal
  value and its reference, so runs in different units compare (1 = the ideal point).
"""

from __future__ import annotations

import numpy as np


def objectives(acc: np.ndarray | list[float], mmacs: np.ndarray | list[float]) -> np.ndarray:
    """(accuracy fractions, millions of MACs per image) -> minimisation points, shape (n, 2)."""
    a = np.asarray(acc, dtype=float).reshape(-1)
    m = np.asarray(mmacs, dtype=float).reshape(-1)
    if a.shape != m.shape:
        raise ValueError(f"acc and mmacs differ in length: {a.shape} vs {m.shape}")
    return np.stack([-a, m], axis=1)


def _as_points(points: np.ndarray | list) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    if p.size == 0:
        return p.reshape(0, p.shape[1] if p.ndim == 2 else 2)
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise ValueError(f"points must have shape (n, 2) or (n, 3), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("points must be finite")
    return p


def non_dominated_mask(points: np.ndarray | list) -> np.ndarray:
    """Boolean mask (n,) of points no other point dominates (identical points all kept).

    After a lexicographic sort of the distinct points, a point is dominated exactly when
    some earlier point has a second objective <= its own (the first is <= by the sort).
    """
    p = _as_points(points)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    if p.shape[1] != 2:  # pairwise: j dominates i if <= everywhere and < somewhere
        le = np.all(p[:, None, :] <= p[None, :, :], axis=2)  # le[j, i]: j <= i
        lt = np.any(p[:, None, :] < p[None, :, :], axis=2)
        return ~np.any(le & lt, axis=0)
    uniq, inverse = np.unique(p, axis=0, return_inverse=True)  # sorted lexicographically
    f2 = uniq[:, 1]
    prefix_min = np.minimum.accumulate(np.concatenate([[np.inf], f2[:-1]]))
    keep = f2 < prefix_min
    return keep[inverse.reshape(-1)]


def non_dominated_sort(points: np.ndarray | list) -> np.ndarray:
    """Front rank per point, shape (n,), int: 0 = non-dominated, 1 = next front, ..."""
    p = _as_points(points)
    ranks = np.full(len(p), -1, dtype=int)
    remaining = np.arange(len(p))
    rank = 0
    while len(remaining):
        mask = non_dominated_mask(p[remaining])
        ranks[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray | list) -> np.ndarray:
    """NSGA-II crowding distance of each point within its set, shape (n,).

    Extremes of each objective get ``inf``; others the sum over objectives of the
    normalised gap between their two neighbours.
    """
    p = _as_points(points)
    n = len(p)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(p.shape[1]):
        order = np.argsort(p[:, k], kind="stable")
        vals = p[order, k]
        span = vals[-1] - vals[0]
        gaps = np.zeros(n)
        gaps[1:-1] = (vals[2:] - vals[:-2]) / span if span > 0 else 0.0
        gaps[0] = gaps[-1] = np.inf
        dist[order] += gaps
    return dist


def hypervolume(points: np.ndarray | list, ref: tuple[float, ...] | np.ndarray) -> float:
    """Volume dominated by ``points`` (minimisation) and bounded by ``ref``; k = 2 or 3."""
    p = _as_points(points)
    r = np.asarray(ref, dtype=float)
    if p.shape[1] == 2:
        return hypervolume_2d(p, (float(r[0]), float(r[1])))
    p = p[np.all(p < r, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[non_dominated_mask(p)]
    # slices along the 3rd objective: between consecutive values the dominated region is the
    # 2-D hypervolume of the points at or below that value
    order = np.argsort(p[:, 2], kind="stable")
    p = p[order]
    levels = np.append(p[:, 2], r[2])
    total = 0.0
    for i in range(len(p)):
        depth = levels[i + 1] - levels[i]
        if depth > 0:
            total += depth * hypervolume_2d(p[: i + 1, :2], (float(r[0]), float(r[1])))
    return float(total)


def normalised_hypervolume_k(values: np.ndarray | list, maximise: list[bool],
                             ideal: list[float], ref: list[float]) -> float:
    """Hypervolume of raw objective ``values`` (n, k) in the box between ``ideal`` and ``ref``
    per objective, as a fraction of the box (1 = a point at the ideal in every objective)."""
    v = np.asarray(values, dtype=float).reshape(-1, len(maximise))
    if len(v) == 0:
        return 0.0
    z = np.empty_like(v)
    for k, (mx, lo, hi) in enumerate(zip(maximise, ideal, ref, strict=True)):
        span = (lo - hi) if mx else (hi - lo)
        if span <= 0:
            raise ValueError(f"objective {k}: the reference must be worse than the ideal")
        z[:, k] = (lo - v[:, k]) / span if mx else (v[:, k] - lo) / span
    return hypervolume(z, np.ones(len(maximise)))


def hypervolume_2d(points: np.ndarray | list, ref: tuple[float, float]) -> float:
    """Area of the region dominated by ``points`` and bounded by ``ref`` (minimisation).

    Points not strictly better than ``ref`` in both objectives contribute nothing.
    """
    p = _as_points(points)[:, :2]
    r = np.asarray(ref, dtype=float)
    p = p[np.all(p < r, axis=1)]
    if len(p) == 0:
        return 0.0
    front = np.unique(p[non_dominated_mask(p)], axis=0)  # sorted by f1 up, so f2 goes down
    widths = np.diff(np.append(front[:, 0], r[0]))
    heights = r[1] - front[:, 1]
    return float(np.sum(widths * heights))


def normalised_hypervolume(
    acc: np.ndarray | list[float], mmacs: np.ndarray | list[float], ref_acc: float,
    ref_mmacs: float,
) -> float:
    """Hypervolume of (acc up, MMACs down) relative to the box [ref_acc, 1] x [0, ref_mmacs]:
    a fraction in [0, 1] (1 = a model with accuracy 1.0 at zero MACs)."""
    if ref_mmacs <= 0 or ref_acc >= 1:
        raise ValueError("need ref_mmacs > 0 and ref_acc < 1")
    pts = objectives(acc, mmacs)
    hv = hypervolume_2d(pts, (-ref_acc, ref_mmacs))
    return hv / ((1.0 - ref_acc) * ref_mmacs)
