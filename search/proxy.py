"""Proxy reliability: can the ranking a cheap proxy gives be trusted?

Model (``docs/proxy.md``): the proxy score of architecture ``i`` under training seed ``s`` is
``y_is = a_i + e_is`` with ``a_i ~ N(mu, sigma2_arch)`` (what the architecture is worth at
this budget) and ``e_is ~ N(0, sigma2_noise)`` (seed noise). Then

- ``SNR = sigma2_arch / sigma2_noise``;
- the Pearson correlation of one proxy score with ``a`` is ``rho_P = sqrt(SNR / (1 + SNR))``
  (``sqrt(S*SNR / (1 + S*SNR))`` for the mean of ``S`` seeds);
- for bivariate normal pairs Spearman's ``rho_S = (6/pi) asin(rho_P / 2)`` and Kendall's
  ``tau = (2/pi) asin(rho_P)``.

From a matrix of scores (architectures x seeds) ``variance_components`` estimates the two
variances (one-way random-effects ANOVA: ``sigma2_noise`` = mean within-architecture variance,
``sigma2_arch`` = variance of the per-architecture means minus ``sigma2_noise / S``);
``rank_agreement`` measures Spearman / Kendall between the proxy and a higher fidelity on
all architectures and on the top-k, with bootstrap intervals (``scipy.stats``);
``assess`` puts both together, with the closed form's prediction beside the measurement.

``in_search_check`` is the cheap version every search records: a few candidates re-scored
with a second seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

# SNR below which the proxy's ranking is mostly noise (rho_S ~ 0.68 or less), and below which
# it is only roughly right (rho_S ~ 0.88).
SNR_LOW = 1.0
SNR_FAIR = 4.0


def rho_pearson(snr: float, seeds: int = 1) -> float:
    """Correlation of the mean of ``seeds`` proxy scores with the noise-free score."""
    if not math.isfinite(snr):
        return 1.0
    r = max(0.0, snr) * seeds
    return math.sqrt(r / (1.0 + r))


def spearman_from_pearson(rho_p: float) -> float:
    """Spearman's rho of a bivariate normal pair with Pearson ``rho_p``: (6/pi) asin(rho_p/2)."""
    return 6.0 / math.pi * math.asin(max(-1.0, min(1.0, rho_p)) / 2.0)


def kendall_from_pearson(rho_p: float) -> float:
    """Kendall's tau of a bivariate normal pair: (2/pi) asin(rho_p)."""
    return 2.0 / math.pi * math.asin(max(-1.0, min(1.0, rho_p)))


class VarianceComponents(BaseModel):
    n_archs: int  # architectures with at least two finite seed scores
    n_seeds: float  # mean number of seed scores per architecture
    mean: float
    sigma2_arch: float  # variance of the architecture effect (ANOVA, >= 0)
    sigma2_means: float  # plain variance of the per-architecture means (includes noise / S)
    sigma2_noise: float  # mean within-architecture (seed) variance
    snr: float  # sigma2_arch / sigma2_noise (inf when there is no seed noise)
    rho_p: float  # one seed's score vs the noise-free score
    rho_s_pred: float  # (6/pi) asin(rho_p / 2)
    tau_pred: float
    rho_p_mean: float  # the mean of n_seeds scores vs the noise-free score
    rho_s_pred_mean: float


def variance_components(scores: np.ndarray | Sequence[Sequence[float]]) -> VarianceComponents:
    """``scores[i, s]``: architecture ``i``, seed ``s`` (NaN = missing). Rows with fewer than
    two finite scores are dropped."""
    y = np.asarray(scores, dtype=float)
    if y.ndim != 2:
        raise ValueError(f"scores must be (architectures, seeds), got shape {y.shape}")
    counts = np.isfinite(y).sum(axis=1)
    y = y[counts >= 2]
    counts = counts[counts >= 2]
    if len(y) < 2:
        raise ValueError("need at least two architectures with two or more seed scores")
    means = np.nanmean(y, axis=1)
    within = np.nanvar(y, axis=1, ddof=1)
    s_mean = float(counts.mean())
    sigma2_noise = float(np.mean(within))
    sigma2_means = float(np.var(means, ddof=1))
    # E[var(means)] = sigma2_arch + sigma2_noise * mean(1/S_i): subtract the noise share
    sigma2_arch = max(0.0, sigma2_means - sigma2_noise * float(np.mean(1.0 / counts)))
    snr = sigma2_arch / sigma2_noise if sigma2_noise > 0 else math.inf
    rp = rho_pearson(snr)
    rpm = rho_pearson(snr, seeds=max(1, round(s_mean)))
    return VarianceComponents(
        n_archs=len(y), n_seeds=s_mean, mean=float(np.mean(means)), sigma2_arch=sigma2_arch,
        sigma2_means=sigma2_means, sigma2_noise=sigma2_noise, snr=snr, rho_p=rp,
        rho_s_pred=spearman_from_pearson(rp), tau_pred=kendall_from_pearson(rp),
        rho_p_mean=rpm, rho_s_pred_mean=spearman_from_pearson(rpm))


class Interval(BaseModel):
    value: float | None
    low: float | None = None
    high: float | None = None

    def text(self, digits: int = 2) -> str:
        if self.value is None:
            return "n/a"
        out = f"{self.value:.{digits}f}"
        if self.low is not None and self.high is not None:
            out += f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return out


class Agreement(BaseModel):
    n: int
    spearman: Interval
    kendall: Interval


def _corr(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    res = stats.spearmanr(a, b) if kind == "spearman" else stats.kendalltau(a, b)
    return float(res.statistic)


def agreement(proxy: np.ndarray, ref: np.ndarray, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> Agreement:
    """Spearman and Kendall of ``proxy`` vs ``ref`` with percentile bootstrap intervals
    (architectures resampled in pairs, ``scipy.stats.bootstrap``)."""
    import warnings

    from scipy import stats

    a, b = np.asarray(proxy, float), np.asarray(ref, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out: dict[str, Interval] = {}
    for kind in ("spearman", "kendall"):
        value = _corr(kind, a, b)
        if not math.isfinite(value):
            out[kind] = Interval(value=None)
            continue
        low = high = None
        if len(a) >= 4 and n_boot > 0:
            with warnings.catch_warnings():  # degenerate resamples (ties) give NaN: skipped
                warnings.simplefilter("ignore")
                res = stats.bootstrap((a, b), lambda x, y, k=kind: _corr(k, x, y), paired=True,
                                      vectorized=False, n_resamples=n_boot,
                                      method="percentile", confidence_level=level,
                                      random_state=seed)
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
            if math.isfinite(lo) and math.isfinite(hi):
                low, high = lo, hi
        out[kind] = Interval(value=value, low=low, high=high)
    return Agreement(n=len(a), spearman=out["spearman"], kendall=out["kendall"])


class RankAgreement(BaseModel):
    all: Agreement
    top_k: Agreement | None = None  # among the k best by the reference
    k: int = 0
    top_k_overlap: float | None = None  # |proxy top-k & reference top-k| / k


def rank_agreement(proxy: Sequence[float], ref: Sequence[float], top_k: int | None = None,
                   n_boot: int = 1000, seed: int = 0) -> RankAgreement:
    """Agreement on every architecture and on the ``top_k`` best by the reference (where
    correlation usually collapses), plus the overlap of the two top-k sets."""
    a, b = np.asarray(proxy, float), np.asarray(ref, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    res = RankAgreement(all=agreement(a, b, n_boot, seed))
    k = top_k if top_k is not None else max(3, len(a) // 3)
    if 3 <= k < len(a):
        best = np.argsort(-b, kind="stable")[:k]
        res.top_k = agreement(a[best], b[best], n_boot, seed)
        res.k = k
        res.top_k_overlap = len(set(np.argsort(-a, kind="stable")[:k]) & set(best)) / k
    return res


class ProxyReport(BaseModel):
    """Everything ``archlore proxy-check`` prints and a run records (meta ``proxy_check``)."""

    dataset: str = ""
    metric: str = "val_acc"
    epochs: float | None = None  # the proxy budget
    ref_epochs: float | None = None  # the higher fidelity, if measured
    proxy: VarianceComponents
    ref: VarianceComponents | None = None  # the same statistics at the reference budget
    # closed form for proxy (mean of its seeds) vs reference (mean of its seeds): the product
    # of both attenuations, assuming the noise-free scores of the two budgets agree perfectly
    rho_s_pred_vs_ref: float | None = None
    agreement: RankAgreement | None = None  # proxy seed mean vs reference seed mean, measured
    # the closed form checked inside the proxy budget: seed 0 vs the mean of the other seeds
    # (no fidelity gap), predicted from SNR vs measured
    split_spearman_pred: float | None = None
    split_spearman: float | None = None
    verdict: str = ""  # trustworthy | rough | noise
    warning: str | None = None
    ids: list[int] = Field(default_factory=list)  # candidate ids (in-search check)
    scores: list[list[float | None]] = Field(default_factory=list)  # proxy, per arch x seed
    ref_scores: list[list[float | None]] = Field(default_factory=list)
    seconds: float | None = None


def verdict_of(snr: float) -> tuple[str, str | None]:
    if snr < SNR_LOW:
        return "noise", (f"proxy SNR {snr:.2f} < {SNR_LOW:g}: seed noise is larger than the "
                         "differences between architectures, so the front's ranking is mostly "
                         "noise -- train longer (more epochs per candidate), average seeds, or "
                         "use multi-fidelity promotion")
    if snr < SNR_FAIR:
        return "rough", (f"proxy SNR {snr:.2f} < {SNR_FAIR:g}: the ranking is only roughly "
                         f"right (predicted Spearman {spearman_from_pearson(rho_pearson(snr)):.2f}"
                         "); close front members are not reliably ordered")
    return "trustworthy", None


def _row_means(y: np.ndarray) -> np.ndarray:
    n = np.isfinite(y).sum(axis=1)
    total = np.where(np.isfinite(y), y, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(1, n), np.nan)


def _matrix(rows: Sequence[Sequence[float | None]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    return np.array([[np.nan if v is None else float(v) for v in r] + [np.nan] * (width - len(r))
                     for r in rows], dtype=float)


def assess(scores: Sequence[Sequence[float | None]],
           ref_scores: Sequence[Sequence[float | None]] | None = None, *,
           top_k: int | None = None, n_boot: int = 1000, seed: int = 0,
           **info: Any) -> ProxyReport:
    """Variance components and SNR of the proxy ``scores`` (architectures x seeds); with
    ``ref_scores`` for the same architectures, the measured rank agreement beside the
    closed form's prediction."""
    y = _matrix(scores)
    proxy = variance_components(y)
    verdict, warning = verdict_of(proxy.snr)
    report = ProxyReport(proxy=proxy, verdict=verdict, warning=warning,
                         scores=[[None if not np.isfinite(v) else float(v) for v in r] for r in y],
                         **info)
    if y.shape[1] >= 2:
        rest = _row_means(y[:, 1:])
        report.split_spearman_pred = spearman_from_pearson(
            rho_pearson(proxy.snr) * rho_pearson(proxy.snr, y.shape[1] - 1))
        report.split_spearman = agreement(y[:, 0], rest, n_boot=0).spearman.value
    if ref_scores is not None and len(ref_scores):
        r = _matrix(ref_scores)
        if len(r) != len(y):
            raise ValueError("ref_scores must have one row per architecture of scores")
        report.ref_scores = [[None if not np.isfinite(v) else float(v) for v in row] for row in r]
        seeds_p = max(1, round(float(np.isfinite(y).sum(axis=1).mean())))
        att = rho_pearson(proxy.snr, seeds_p)
        ref_counts = np.isfinite(r).sum(axis=1)
        if (ref_counts >= 2).sum() >= 2:
            report.ref = variance_components(r)
            att *= rho_pearson(report.ref.snr, max(1, round(report.ref.n_seeds)))
        report.rho_s_pred_vs_ref = spearman_from_pearson(att)
        pm, rm = _row_means(y), _row_means(r)
        report.agreement = rank_agreement(pm, rm, top_k, n_boot, seed)
    return report


def format_report(rep: ProxyReport) -> list[str]:
    """Plain lines for the terminal and for notes."""
    p = rep.proxy
    head = f"proxy {rep.metric}" + (f" at {rep.epochs:g} epochs" if rep.epochs else "")
    lines = [f"{head}: {p.n_archs} architectures x {p.n_seeds:.1f} seeds"
             + (f" on {rep.dataset}" if rep.dataset else ""),
             f"  sigma2_arch  {p.sigma2_arch:.3g}  (variance of per-arch means {p.sigma2_means:.3g})",
             f"  sigma2_noise {p.sigma2_noise:.3g}",
             f"  SNR          {p.snr:.3g}",
             f"  rho_P(SNR)   {p.rho_p:.3f} one seed, {p.rho_p_mean:.3f} mean of seeds",
             f"  predicted rho_S vs noise-free: {p.rho_s_pred:.3f} one seed, "
             f"{p.rho_s_pred_mean:.3f} mean of seeds (Kendall {p.tau_pred:.3f})"]
    if rep.split_spearman is not None:
        lines.append(f"  same budget, seed 0 vs the other seeds' mean: predicted Spearman "
                     f"{rep.split_spearman_pred:.3f}, measured {rep.split_spearman:.3f}")
    if rep.ref is not None:
        lines.append(f"reference at {rep.ref_epochs:g} epochs: sigma2_arch {rep.ref.sigma2_arch:.3g}, "
                     f"sigma2_noise {rep.ref.sigma2_noise:.3g}, SNR {rep.ref.snr:.3g}")
    if rep.agreement is not None:
        a = rep.agreement
        lines.append(f"proxy vs reference ({a.all.n} archs): predicted Spearman "
                     f"{rep.rho_s_pred_vs_ref:.3f}; measured Spearman {a.all.spearman.text()}, "
                     f"Kendall {a.all.kendall.text()} (95% bootstrap)")
        if a.top_k is not None:
            lines.append(f"  top-{a.k} by reference: Spearman {a.top_k.spearman.text()}, "
                         f"Kendall {a.top_k.kendall.text()}, top-{a.k} overlap "
                         f"{a.top_k_overlap:.2f}")
    lines.append(f"verdict: {rep.verdict}" + (f" -- {rep.warning}" if rep.warning else ""))
    return lines


# -- measuring -------------------------------------------------------------------------------
Submit = Callable[[str, Any], "Future[Any]"]


def submitter(backend: Any) -> Submit | None:
    """A ``submit(code, eval_config) -> Future[Evaluation]`` for a backend that can score code
    with a config other than the run's (another seed, another number of epochs): the Ray
    backend's ``submit_code``, or the pool backend's evaluator pool. None otherwise (tables)."""
    fn = getattr(backend, "submit_code", None)
    if callable(fn):
        return lambda code, cfg: fn(code, cfg)
    pool = getattr(backend, "_pool", None)  # search.backends.pool.PoolBackend
    if pool is not None and callable(getattr(pool, "submit", None)):
        return lambda code, cfg: pool.submit(code, cfg)
    if callable(getattr(backend, "submit", None)) and hasattr(backend, "workers") \
            and hasattr(backend, "close") and not hasattr(backend, "slots"):
        return lambda code, cfg: backend.submit(code, cfg)  # an EvaluatorPool itself
    return None


def score_matrix(codes: Sequence[str], base_cfg: Any, submit: Submit, *, epochs: float,
                 seeds: Sequence[int], metric: str = "val_acc",
                 max_steps: int | None = None) -> tuple[list[list[float | None]], list[Any]]:
    """Score every code at ``epochs`` under every seed (all submitted at once); returns the
    (architectures x seeds) metric matrix (None = not ok) and the evaluations."""
    cfgs = [base_cfg.model_copy(update={"epochs": epochs, "seed": s, "max_steps": max_steps})
            for s in seeds]
    futs = [[submit(code, cfg) for cfg in cfgs] for code in codes]
    evs = [[f.result() for f in row] for row in futs]
    mat = [[ev.metric(metric) if ev.ok else None for ev in row] for row in evs]
    return mat, evs


def in_search_check(cands: list[Any], base_cfg: Any, submit: Submit, *, n: int = 4,
                    seed_offset: int = 1, metric: str = "val_acc", dataset: str = "",
                    ) -> ProxyReport | None:
    """The cheap check every proxy-scored search records: ``n`` valid candidates spread over
    the run's accuracy range re-scored once with seed ``run seed + seed_offset``; SNR from
    those pairs (a two-seed ANOVA). None when fewer than 3 valid candidates have code."""
    import time

    valid = [c for c in cands if c.valid and c.code and c.evaluation.metric(metric) is not None]
    if len(valid) < 3 or n < 3:
        return None
    valid.sort(key=lambda c: (c.evaluation.metric(metric), c.id))
    picks = sorted({valid[round(i * (len(valid) - 1) / (min(n, len(valid)) - 1))].id
                    for i in range(min(n, len(valid)))})
    chosen = [c for c in valid if c.id in picks]
    t0 = time.monotonic()
    seed2 = int(base_cfg.seed) + seed_offset
    futs = []
    for c in chosen:
        ev0 = c.evaluation
        cfg = base_cfg.model_copy(update={"seed": seed2})
        epochs = ev0.metrics.get("fidelity_epochs")
        if epochs is not None:  # a multi-fidelity run: re-score at the rung it reached
            cfg = cfg.model_copy(update={"epochs": float(epochs),
                                         "max_steps": _steps(ev0.metrics.get("fidelity_steps"))})
        futs.append(submit(c.code, cfg))
    rows = []
    for c, f in zip(chosen, futs, strict=True):
        ev = f.result()
        rows.append([c.evaluation.metric(metric), ev.metric(metric) if ev.ok else None])
    try:
        rep = assess(rows, metric=metric, dataset=dataset, epochs=base_cfg.epochs, n_boot=0)
    except ValueError:
        return None
    rep.ids = [c.id for c in chosen]
    rep.seconds = time.monotonic() - t0
    return rep


def sample_codes(dataset: str, n: int, seed: int = 0, data_root: str | None = None,
                 space: str = "open") -> list[str]:
    """``n`` distinct random architectures of ``space`` for ``dataset``, as Net sources."""
    from archlore.search.config import SearchConfig
    from archlore.search.registry import SPACES
    from archlore.search.run import constraints_of

    sp = SPACES.get(space)()
    cons = constraints_of(SearchConfig(dataset=dataset, data_root=data_root, space=space))
    rng = np.random.default_rng([seed, 13])
    codes: list[str] = []
    seen: set[str] = set()
    for _ in range(50 * n):
        if len(codes) >= n:
            break
        code = sp.render(sp.random(rng, cons), cons)
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def measure(codes: Sequence[str], base_cfg: Any, submit: Submit, *, epochs: float,
            seeds: int = 3, ref_epochs: float | None = None, ref_seeds: int | None = None,
            metric: str = "val_acc", top_k: int | None = None, n_boot: int = 1000,
            max_steps: int | None = None, ref_max_steps: int | None = None) -> ProxyReport:
    """``archlore proxy-check``: every code at ``epochs`` x ``seeds`` seeds and, with
    ``ref_epochs``, at the reference budget x ``ref_seeds`` (default: ``seeds``); seeds are
    ``base_cfg.seed + 0, 1, ...``."""
    import time

    t0 = time.monotonic()
    base = int(base_cfg.seed)
    scores, _ = score_matrix(codes, base_cfg, submit, epochs=epochs, metric=metric,
                             seeds=[base + i for i in range(seeds)], max_steps=max_steps)
    ref = None
    if ref_epochs is not None:
        ref, _ = score_matrix(codes, base_cfg, submit, epochs=ref_epochs, metric=metric,
                              seeds=[base + i for i in range(ref_seeds or seeds)],
                              max_steps=ref_max_steps)
    rep = assess(scores, ref, top_k=top_k, n_boot=n_boot, metric=metric,
                 dataset=getattr(base_cfg, "dataset", ""), epochs=epochs, ref_epochs=ref_epochs)
    rep.seconds = time.monotonic() - t0
    return rep


def _steps(v: Any) -> int | None:
    return None if v is None else int(v)


__all__ = ["Agreement", "Interval", "ProxyReport", "RankAgreement", "VarianceComponents",
           "agreement", "assess", "format_report", "in_search_check", "kendall_from_pearson",
           "measure", "rank_agreement", "rho_pearson", "sample_codes", "score_matrix", "spearman_from_pearson", "submitter",
           "variance_components", "verdict_of"]
