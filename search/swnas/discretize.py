"""From a trained supernet's signals to NAS-Bench-201 cells.

Three discretisations, each a per-edge score table ``s(e, o)`` (6 x 5; ``-inf`` = impossible)
and a ranking of whole cells by ``sum_e s(e, o_e)``:

* ``argmax`` (DARTS-V1): ``s = log softmax(alpha)``; the cell is the per-edge argmax over all
  five ops, ``none`` included -- as NAS-Bench-201's DARTS does, connected or not.
* ``pt`` (DARTS-PT, one shot): ``s = D(e, o)``, the loss rise when ``o`` is removed; ``none``
  excluded.
* ``synergistic`` (SWNAS, see docs/swnas.md)::

      p(e,o) = softmax(alpha_e) renormalised over e's unmasked non-none ops
      r(e,o) = (D+(e,o) + eps) / sum_o' (D+(e,o') + eps)          measured share
      nu(e)  = sqrt(I_src(e) * I_dst(e))                           node factor
      S(e,o) = nu(e) * pi(e,o) * p^(1-lam) * r^lam                 o != none
      S(e,none) = tau * pi(e,none) * max_o' p^(1-lam) r^lam        prune when nu(e) < tau

  (``pi``: preference factors from advisor edits, 1 by default). The cell is the
  highest-scoring *connected* cell under ``sum_e log S(e, o_e)``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from archlore.search.spaces.nb201 import EDGES, OPS, connected, format_arch
from archlore.search.swnas.messages import StructuralSignals

NONE = OPS.index("none")
EPS = 1e-6
NEG = -np.inf


@lru_cache(maxsize=1)
def _all_cells() -> tuple[np.ndarray, np.ndarray]:
    """(15625 x 6 op-index array, connected flags), op-index lexicographic order."""
    idx = np.array(list(itertools.product(range(len(OPS)), repeat=len(EDGES))), dtype=np.int64)
    ok = np.array([connected(tuple(OPS[i] for i in row)) for row in idx])
    return idx, ok


def _allowed(signals: StructuralSignals) -> np.ndarray:
    return ~np.asarray(signals.masked, dtype=bool)


def argmax_scores(signals: StructuralSignals) -> np.ndarray:
    a = np.asarray(signals.alpha, dtype=float)
    with np.errstate(divide="ignore"):
        s = np.log(a)
    return np.where(_allowed(signals), s, NEG)


def pt_scores(signals: StructuralSignals) -> np.ndarray:
    s = np.asarray(signals.op_importance, dtype=float).copy()
    allowed = _allowed(signals)
    s[:, NONE] = NEG
    s = np.where(allowed, s, NEG)
    only_none = ~np.isfinite(s).any(axis=1)
    s[only_none, NONE] = 0.0  # an edge left with none only must take it
    return s


def node_factors(signals: StructuralSignals) -> np.ndarray:
    imp = np.clip(np.asarray(signals.node_importance, dtype=float), 0.0, 1.0)
    return np.array([np.sqrt(imp[i] * imp[j]) for i, j in EDGES])


def synergistic_scores(signals: StructuralSignals, lam: float = 0.75, tau: float = 0.1,
                       prefer: list[list[float]] | None = None) -> np.ndarray:
    """``log S(e, o)`` (module docstring)."""
    allowed = _allowed(signals)
    real = allowed.copy()
    real[:, NONE] = False
    a = np.where(real, np.asarray(signals.alpha, dtype=float), 0.0)
    d = np.where(real, np.maximum(np.asarray(signals.op_importance, dtype=float), 0.0) + EPS, 0.0)
    asum, dsum = a.sum(1, keepdims=True), d.sum(1, keepdims=True)
    p = np.divide(a, asum, out=np.zeros_like(a), where=asum > 0)
    r = np.divide(d, dsum, out=np.zeros_like(d), where=dsum > 0)
    pi = np.ones_like(a) if prefer is None else np.asarray(prefer, dtype=float)
    local = pi * np.power(p, 1.0 - lam) * np.power(r, lam)
    nu = node_factors(signals)[:, None]
    s = nu * local
    s[:, NONE] = tau * pi[:, NONE] * local.max(axis=1)
    s = np.where(allowed, s, 0.0)
    only_none = allowed[:, NONE] & ~real.any(axis=1)
    s[only_none, NONE] = 1.0
    with np.errstate(divide="ignore"):
        return np.log(s)


def rank_cells(scores: np.ndarray, k: int = 20, connected_only: bool = False) -> list[str]:
    """The ``k`` best cells by summed per-edge score (ties: earlier op-index order)."""
    idx, ok = _all_cells()
    total = scores[np.arange(len(EDGES))[None, :], idx].sum(axis=1)
    finite = np.isfinite(total) & (ok if connected_only else True)
    order = np.flatnonzero(finite)
    order = order[np.argsort(-total[order], kind="stable")][:k]
    return [format_arch([OPS[i] for i in idx[c]]) for c in order]


def per_edge_argmax(scores: np.ndarray) -> str:
    return format_arch([OPS[int(np.argmax(row))] for row in scores])


def derive_all(signals: StructuralSignals, lam: float = 0.75, tau: float = 0.1,
               prefer: list[list[float]] | None = None, k: int = 20) -> dict[str, list[str]]:
    """``{method: [derived cell, next-best cells...]}`` for argmax, pt and synergistic."""
    out = {}
    for name, scores, conn in (
        ("argmax", argmax_scores(signals), False),
        ("pt", pt_scores(signals), False),
        ("synergistic", synergistic_scores(signals, lam, tau, prefer), True),
    ):
        ranked = rank_cells(scores, k, connected_only=conn)
        if not conn:  # the method's own cell first, exactly as that method derives it
            first = per_edge_argmax(scores)
            ranked = [first] + [c for c in ranked if c != first][:k - 1]
        out[name] = ranked
    return out
