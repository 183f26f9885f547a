"""A prior over NAS-Bench-201 cell operations computed from the knowledge store, and a
posterior that in-run evidence updates.

**Where the prior comes from.** Every idea with ``cell_ops`` says which operation it writes
into a cell (``add_conv3x3`` writes ``nor_conv_3x3``, ``remove_pool`` writes ``skip_connect``,
a ``swap_A_to_B`` writes B and removes A) and which effect on accuracy its paper reports
(``effect.accuracy``: up = +1, neutral = 0, down = -1, unknown = not counted). An idea counts
with weight = the number of its supporting provenance entries (at least 1). The value of an
operation is the weighted mean of those signs, shrunk towards 0 by one neutral pseudo-vote::

    value(op) = sum(w * sign) / (sum(w) + 1)        (a removed op gets -sign)

Nothing here reads a benchmark table; ideas carry no placement, so the prior says nothing
about *where* an op goes (placement terms start at 0). With the built-in corpus (24 ideas with
``cell_ops``) the values are ``OpPrior.from_ideas(load_builtin_ideas()).values`` (see
docs/nb201.md for the figures).

**How evidence re-weights it.** :class:`CellModel` is a Bayesian linear model of the run's
quality objective (standardised over the cells told so far) on a cell's features: per-op
counts over live edges (prior mean = ``PRIOR_SCALE * value(op)``) and per-(edge, op) placement
indicators (prior mean 0), plus an intercept. Prior precision ``strength`` acts like that many
pseudo-observations per coefficient, so the prior's weight on a coefficient falls as
``strength / (strength + evidence)`` while the run collects evidence for it
(``CellModel.prior_weight``). ``sample`` draws one coefficient vector from the posterior
(Thompson sampling), deterministic for a given generator.

Constants (chosen a priori, not tuned on the table; listed in docs/nb201.md):
``PRIOR_SCALE`` = 0.5 standard deviations of quality per unit of op value per live edge,
``DEFAULT_STRENGTH`` = 2 pseudo-observations, the noise variance 1 (standardised units).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from archlore.knowledge.schema import Direction, Idea
from archlore.search.spaces.nb201 import (
    EDGES,
    NUM_ARCHS,
    NUM_EDGES,
    OPS,
    Cell,
    live_edges,
    parse_arch,
)

PRIOR_SCALE = 0.5
DEFAULT_STRENGTH = 2.0
PSEUDO_VOTES = 1.0
MIN_CHECK = 5  # tells before the prior's ranking is checked against the evidence
MIN_NOISE = 0.05  # floor of the estimated noise variance (standardised units)

# cell op -> (op it writes, op it removes or None)
CELL_OP_EFFECT: dict[str, tuple[str, str | None]] = {
    "add_conv3x3": ("nor_conv_3x3", None),
    "add_conv1x1": ("nor_conv_1x1", None),
    "add_avg_pool": ("avg_pool_3x3", None),
    "add_skip": ("skip_connect", None),
    "delete_layer": ("none", None),
    "swap_conv1x1_to_conv3x3": ("nor_conv_3x3", "nor_conv_1x1"),
    "swap_pool_to_conv3x3": ("nor_conv_3x3", "avg_pool_3x3"),
    "remove_pool": ("skip_connect", "avg_pool_3x3"),
}
_SIGN = {Direction.UP: 1.0, Direction.NEUTRAL: 0.0, Direction.DOWN: -1.0}


@dataclass
class OpPrior:
    """Per-operation values from ideas, with the ideas behind each value (provenance)."""

    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OPS, 0.0))
    votes: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)
    # op -> [(idea id, sign, weight)]

    @classmethod
    def from_ideas(cls, ideas: Iterable[Idea]) -> OpPrior:
        votes: dict[str, list[tuple[str, float, float]]] = {op: [] for op in OPS}
        for idea in sorted(ideas, key=lambda i: i.id):
            sign = _SIGN.get(idea.effect.accuracy)
            if sign is None or not idea.cell_ops:
                continue
            weight = float(max(1, len(idea.supporting())))
            for cop in idea.cell_ops:
                writes, removes = CELL_OP_EFFECT[cop]
                votes[writes].append((idea.id, sign, weight))
                if removes is not None:
                    votes[removes].append((idea.id, -sign, weight))
        values = {op: (sum(s * w for _, s, w in v) / (sum(w for *_, w in v) + PSEUDO_VOTES))
                  for op, v in votes.items()}
        return cls(values=values, votes=votes)

    @classmethod
    def flat(cls) -> OpPrior:
        return cls()

    def describe(self) -> dict[str, Any]:
        return {op: {"value": round(self.values[op], 4),
                     "ideas": [i for i, *_ in self.votes.get(op, [])]} for op in OPS}


def features(cell: Cell) -> np.ndarray:
    """[intercept, 5 live op counts, 30 live (edge, op) indicators]."""
    return _features(tuple(cell)).copy()


@lru_cache(maxsize=NUM_ARCHS)
def _features(cell: Cell) -> np.ndarray:
    live = live_edges(cell)
    x = np.zeros(1 + len(OPS) + NUM_EDGES * len(OPS))
    x[0] = 1.0
    for e, (op, ok) in enumerate(zip(cell, live, strict=True)):
        if ok:
            k = OPS.index(op)
            x[1 + k] += 1.0
            x[1 + len(OPS) + e * len(OPS) + k] = 1.0
    return x


class CellModel:
    """Posterior over the linear model's coefficients given the prior and the tells."""

    def __init__(self, prior: OpPrior, strength: float = DEFAULT_STRENGTH,
                 scale: float = PRIOR_SCALE, adaptive: bool = False) -> None:
        self.prior = prior
        self.strength = float(strength)
        # adaptive: the prior keeps the weight its ranking earns on the run's evidence
        # (``agreement``), and the noise variance is estimated from the residuals, so a
        # model that fits explores less
        self.adaptive = adaptive
        self._prior_scores: list[float] = []  # the prior's mean score of each told cell
        self._ys: list[float] = []
        d = 1 + len(OPS) + NUM_EDGES * len(OPS)
        self.m0 = np.zeros(d)
        for k, op in enumerate(OPS):
            self.m0[1 + k] = scale * prior.values.get(op, 0.0)
        self.lam = np.full(d, self.strength)
        self.lam[0] = 1e-3  # intercept: uninformative
        self.xtx = np.zeros((d, d))
        self.sx = np.zeros(d)
        self.sxy = np.zeros(d)
        self.sy = 0.0
        self.syy = 0.0
        self.n = 0
        self._post: tuple[np.ndarray, np.ndarray] | None = None

    def observe(self, cell: Cell | str, quality: float) -> None:
        """One told cell and its quality (larger is better, any unit)."""
        x = _features(parse_arch(cell) if isinstance(cell, str) else cell)
        q = float(quality)
        self.xtx += np.outer(x, x)
        self.sx += x
        self.sxy += x * q
        self.sy += q
        self.syy += q * q
        self.n += 1
        self._prior_scores.append(float(x @ self.m0))
        self._ys.append(q)
        self._post = None

    def agreement(self) -> float:
        """Spearman rank correlation between the prior's scores of the told cells and their
        observed quality (1.0 before ``MIN_CHECK`` tells or while either is constant)."""
        if self.n < MIN_CHECK:
            return 1.0
        a, b = np.asarray(self._prior_scores), np.asarray(self._ys)
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return 1.0
        ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
        rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
        return float(np.corrcoef(ra, rb)[0, 1])

    def prior_factor(self) -> float:
        """The multiplier of the op coefficients' prior precision: 1 for a plain model;
        adaptive: ``max(agreement, 0)`` (floored at 1e-3) -- a prior whose ranking the
        evidence contradicts stops pulling at once, one that agrees keeps its weight."""
        return max(self.agreement(), 1e-3) if self.adaptive else 1.0

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, covariance) of the coefficients; quality standardised by the tells' mean
        and standard deviation (sufficient statistics, so each update is O(d^2))."""
        if self._post is None:
            lam = self.lam.copy()
            lam[1:1 + len(OPS)] *= self.prior_factor()
            A = np.diag(lam)
            b = lam * self.m0
            bd = np.zeros_like(b)
            if self.n >= 2:
                mean = self.sy / self.n
                sd = float(np.sqrt(max(self.syy / self.n - mean * mean, 0.0))) or 1.0
                A = A + self.xtx
                bd = (self.sxy - mean * self.sx) / sd
                b = b + bd
            cov = np.linalg.inv(A)
            cov = (cov + cov.T) / 2
            m = cov @ b
            if self.adaptive and self.n >= MIN_CHECK:
                # residual variance of the standardised qualities (sum y^2 = n), with
                # one pseudo-observation at variance 1
                rss = self.n - 2 * float(m @ bd) + float(m @ self.xtx @ m)
                cov = cov * min(1.0, max(MIN_NOISE, (rss + 1.0) / (self.n + 1)))
            self._post = (m, cov)
        return self._post

    def mean_score(self, cell: Cell | str) -> float:
        if isinstance(cell, str):
            cell = parse_arch(cell)
        return float(features(cell) @ self._posterior()[0])

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One coefficient vector from the posterior (Thompson sampling)."""
        mean, cov = self._posterior()
        return rng.multivariate_normal(mean, cov, method="cholesky")

    @staticmethod
    def score_with(w: np.ndarray, cells: Sequence[Cell | str]) -> np.ndarray:
        X = np.array([_features(parse_arch(c) if isinstance(c, str) else tuple(c)) for c in cells])
        return X @ w

    def prior_weight(self) -> float:
        """Mean over the op-count coefficients of strength / (strength + evidence)."""
        if not self.n:
            return 1.0
        ev = np.diag(self.xtx)[1:1 + len(OPS)]
        lam = self.strength * self.prior_factor()
        return float(np.mean(lam / (lam + ev)))

    def op_values(self) -> dict[str, float]:
        """The posterior mean of the op-count coefficients (standardised units)."""
        mean = self._posterior()[0]
        return {op: round(float(mean[1 + k]), 4) for k, op in enumerate(OPS)}


def prior_order(prior: OpPrior) -> list[str]:
    """All cells by the prior's mean score, best first (ties: canonical string order)."""
    from archlore.search.spaces.nb201 import all_archs

    model = CellModel(prior)
    archs = all_archs()
    scores = CellModel.score_with(model._posterior()[0], archs)
    order = sorted(range(len(archs)), key=lambda i: (-round(float(scores[i]), 9), archs[i]))
    return [archs[i] for i in order]


def randomised_ideas(ideas: list[Idea], seed: int) -> list[Idea]:
    """Ablation: the same ideas with random ``cell_ops`` (as many as before), seeded."""
    rng = np.random.default_rng([seed, 20170])
    names = sorted(CELL_OP_EFFECT)
    out = []
    for idea in sorted(ideas, key=lambda i: i.id):
        if idea.cell_ops:
            ops = [names[int(k)] for k in rng.integers(len(names), size=len(idea.cell_ops))]
            idea = idea.model_copy(update={"cell_ops": ops})
        out.append(idea)
    return out


__all__ = ["CELL_OP_EFFECT", "DEFAULT_STRENGTH", "EDGES", "PRIOR_SCALE", "CellModel", "OpPrior",
           "features", "prior_order", "randomised_ideas"]
