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


# --- progressive synergistic discretisation -----------------------------------------------------

def commit(w: np.ndarray, e: int, o: int) -> np.ndarray:
    """``w`` with edge ``e`` discretised to op ``o``: the edge's non-none mass moves onto ``o``
    (``none``: the edge's row becomes 0), so the cell's scale stays what the supernet saw."""
    w = np.array(w, dtype=float, copy=True)
    mass = float(w[e].sum() - w[e, NONE])
    w[e] = 0.0
    if o != NONE:
        w[e, o] = mass if mass > 0 else 1.0
    return w


def progressive(w: np.ndarray, loss_fn, allowed: np.ndarray | None = None,
                prefer: np.ndarray | None = None, criterion: str = "remove",
                allow_none: bool = True, require_connected: bool = True
                ) -> tuple[str, list[dict]]:
    """Discretise the cell one edge at a time, each decision measured on the supernet in the
    context of the decisions already taken (docs/swnas.md, section 3b). At step ``t``, for
    every undecided edge ``e`` and allowed op ``o``::

        criterion="remove" (default; DARTS-PT's measure, re-measured after every commit)
            g_t(e, o) = -[loss_fn(W_t with w_{e,o} = 0) - loss_fn(W_t)] - log pi(e, o)
            (o != none: removing none changes nothing)
        criterion="keep"
            g_t(e, o) = loss_fn(W_t with edge e committed to o) - log pi(e, o)

        e_t = the undecided edge with the largest margin between its best and second-best g
        W_{t+1} = W_t with e_t committed to argmin_o g_t(e_t, o)      (:func:`commit`)

    ``loss_fn(weights 6x5) -> float`` is the supernet's validation loss under those mixing
    weights (any pure function in tests); ``pi`` are the advisor's preference factors. With
    ``require_connected`` a commit that leaves no connected completion is skipped.
    Returns the cell and the trace (edge, op, margin, g) of every step.
    """
    if criterion not in ("remove", "keep"):
        raise ValueError(f"criterion must be 'remove' or 'keep', not {criterion!r}")
    w = np.array(w, dtype=float, copy=True)
    n_e, n_o = w.shape
    ok = np.ones((n_e, n_o), dtype=bool) if allowed is None else np.asarray(allowed, bool).copy()
    if criterion == "remove" or not allow_none:  # none only where nothing else is allowed
        ok[ok[:, NONE + 1:].any(1), NONE] = False
    pi = np.ones((n_e, n_o)) if prefer is None else np.asarray(prefer, dtype=float)
    chosen: dict[int, int] = {}
    trace: list[dict] = []
    while len(chosen) < n_e:
        base = loss_fn(w) if criterion == "remove" else 0.0
        best = None
        for e in range(n_e):
            if e in chosen:
                continue
            g = np.full(n_o, np.inf)
            for o in np.flatnonzero(ok[e]):
                o = int(o)
                if require_connected and not _completable({**chosen, e: o}, ok):
                    continue
                if criterion == "keep" or o == NONE:  # an edge left with none only
                    g[o] = loss_fn(commit(w, e, o)) - np.log(pi[e, o])
                else:
                    w2 = w.copy()
                    w2[e, o] = 0.0
                    g[o] = base - loss_fn(w2) - np.log(pi[e, o])
            fin = np.sort(g[np.isfinite(g)])
            if not len(fin):
                continue
            margin = float(fin[1] - fin[0]) if len(fin) > 1 else np.inf
            if best is None or margin > best[0]:
                best = (margin, e, int(np.argmin(g)), g)
        if best is None:  # nothing connectable is left (cannot happen with a valid mask)
            raise ValueError("no connected discretisation is possible under this mask")
        margin, e, o, g = best
        chosen[e] = o
        w = commit(w, e, o)
        trace.append({"edge": e, "op": OPS[o], "margin": margin,
                      "g": [None if not np.isfinite(v) else float(v) for v in g]})
    return format_arch([OPS[chosen[e]] for e in range(n_e)]), trace


def _completable(chosen: dict[int, int], ok: np.ndarray) -> bool:
    """Can the partial cell ``chosen`` (edge -> op) still be completed to a connected cell?
    Undecided edges take any allowed non-none op if they have one (the most connected case)."""
    ops = []
    for e in range(len(EDGES)):
        if e in chosen:
            ops.append(OPS[chosen[e]])
        else:
            real = ok[e].copy()
            real[NONE] = False
            ops.append("skip_connect" if real.any() else "none")
    return connected(tuple(ops))
