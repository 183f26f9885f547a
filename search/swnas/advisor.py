"""The deterministic, rule-based advisor: the offline counterpart of the LLM step.

It reads only the quantitative signals (no table, no test data) and applies two rules:

1. **Skip-collapse guard.** When ``skip_connect`` holds the largest alpha weight on at least
   ``collapse_edges`` edges (DARTS's known failure on NAS-Bench-201), mask ``skip_connect`` on
   each such edge where alpha over-credits it relative to its measured contribution
   (``p(skip) > r(skip)``: its share of the edge's alpha exceeds its share of the edge's
   op importance). The shortcut ``3<-0`` is exempt: one identity path from input to output is
   what a residual cell keeps.
2. **Prefer measured convolutions into important nodes.** For an edge into a node with
   importance >= ``important`` and a non-falling trend, prefer the op with the largest measured
   importance when it is a convolution (strength ``prefer_strength``).
"""

from __future__ import annotations

import numpy as np
from archlore.search.spaces.nb201 import EDGES, OPS
from archlore.search.swnas.messages import EDGE_LABELS, MaskOp, PreferOp, StructuralSignals

SKIP, NONE = OPS.index("skip_connect"), OPS.index("none")
CONVS = (OPS.index("nor_conv_1x1"), OPS.index("nor_conv_3x3"))


def _shares(signals: StructuralSignals) -> tuple[np.ndarray, np.ndarray]:
    """Per row, each op's share of alpha (``p``) and of positive measured importance (``r``)
    over the unmasked ops (``none`` excluded in the NB201 cell)."""
    allowed = ~np.asarray(signals.masked, dtype=bool)
    if signals.space == "nb201":
        allowed[:, NONE] = False
    a = np.where(allowed, np.asarray(signals.alpha, dtype=float), 0.0)
    d = np.where(allowed, np.maximum(np.asarray(signals.op_importance, dtype=float), 0.0), 0.0)
    p = a / np.maximum(a.sum(1, keepdims=True), 1e-12)
    r = d / np.maximum(d.sum(1, keepdims=True), 1e-12)
    return p, r


def advise(signals: StructuralSignals, collapse_edges: int = 3, important: float = 0.5,
           prefer_strength: float = 1.5) -> list[MaskOp | PreferOp]:
    """Edits for ``signals`` (possibly none). Pure function of its input."""
    if signals.space == "open":
        from archlore.search.swnas.open_advisor import advise_open

        return advise_open(signals, important=important, prefer_strength=prefer_strength)
    alpha = np.where(np.asarray(signals.masked, dtype=bool), -1.0,
                     np.asarray(signals.alpha, dtype=float))
    p, r = _shares(signals)
    edits: list[MaskOp | PreferOp] = []
    skip_top = [e for e in range(len(EDGES)) if int(np.argmax(alpha[e])) == SKIP]
    if len(skip_top) >= collapse_edges:
        for e in skip_top:
            if EDGE_LABELS[e] == "3<-0" or p[e, SKIP] <= r[e, SKIP]:
                continue
            edits.append(MaskOp(edge=EDGE_LABELS[e], op="skip_connect",
                                reason=f"skip holds the top weight on {len(skip_top)} edges; on "
                                       f"{EDGE_LABELS[e]} its alpha share {p[e, SKIP]:.2f} "
                                       f"exceeds its measured share {r[e, SKIP]:.2f}"))
    masked_now = {(m.edge, m.op) for m in edits}
    imp = np.asarray(signals.node_importance, dtype=float)
    trend = np.asarray(signals.node_trend, dtype=float)
    d = np.asarray(signals.op_importance, dtype=float)
    for e, (i, _) in enumerate(EDGES):
        if imp[i] < important or trend[i] < 0:
            continue
        row = np.where(~np.asarray(signals.masked[e], dtype=bool), d[e], -np.inf)
        row[NONE] = -np.inf
        best = int(np.argmax(row))
        if best in CONVS and np.isfinite(row[best]) and row[best] > 0 \
                and (EDGE_LABELS[e], OPS[best]) not in masked_now:
            edits.append(PreferOp(edge=EDGE_LABELS[e], op=OPS[best], strength=prefer_strength,
                                  reason=f"node {i} importance {imp[i]:.2f} (trend "
                                         f"{trend[i]:+.3f}); {OPS[best]} has the largest "
                                         f"measured importance on {EDGE_LABELS[e]}"))
    return edits


def observations(signals: StructuralSignals, gap: float = 0.1) -> list[str]:
    """Plain-sentence facts an LLM advisor can act on (a small model cannot read them off the
    6 x 5 table): where skip leads, and where an op's alpha share exceeds its measured share
    by more than ``gap`` (alpha over-credits it) or falls short of it (under-credits it)."""
    if signals.space == "open":
        from archlore.search.swnas.open_advisor import open_observations

        return open_observations(signals, gap)
    alpha = np.where(np.asarray(signals.masked, dtype=bool), -1.0,
                     np.asarray(signals.alpha, dtype=float))
    p, r = _shares(signals)
    lines = []
    lead = [EDGE_LABELS[e] for e in range(len(EDGES)) if int(np.argmax(alpha[e])) == SKIP]
    lines.append(f"skip_connect has the largest weight on {len(lead)} of {len(EDGES)} edges"
                 + (f" ({', '.join(lead)})" if lead else "") + ".")
    over, under = credit_gaps(signals, p, r, gap, lambda e, o: f"{EDGE_LABELS[e]} {OPS[o]}",
                              skip=NONE)
    lines.append("Weight share above measured share (over-credited: candidates for mask_op): "
                 + ("; ".join(over) if over else "none") + ".")
    lines.append("Weight share below measured share (under-credited: candidates for prefer_op): "
                 + ("; ".join(under) if under else "none") + ".")
    return lines


def credit_gaps(signals: StructuralSignals, p: np.ndarray, r: np.ndarray, gap: float,
                name, skip: int | None = None, extra=None) -> tuple[list[str], list[str]]:
    """(over-credited, under-credited) unmasked ops, as ``name(row, op)`` plus their alpha
    vs measured shares (and ``extra(row, op)`` for over-credited ones when given)."""
    over, under = [], []
    for e in range(len(signals.edges)):
        for o in range(len(signals.ops)):
            if o == skip or signals.masked[e][o]:
                continue
            shares = f"{p[e, o]:.2f} vs {r[e, o]:.2f}"
            if p[e, o] - r[e, o] > gap:
                over.append(f"{name(e, o)} ({shares}{extra(e, o) if extra else ''})")
            elif r[e, o] - p[e, o] > gap:
                under.append(f"{name(e, o)} ({shares})")
    return over, under
