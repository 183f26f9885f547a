"""NAS-Bench-201 harness: run strategies against the table, many seeds, one protocol.

Protocol (the same for every strategy):
- one query = one NEW cell scored by the table (or one failed proposal); a proposal whose cell
  was already scored in this run is told back as a ``duplicate`` without evaluation, noted
  ``[near-duplicate of #N]``, and costs nothing -- the engine's novelty filter semantics;
- after ``b`` queries the run's answer is the cell with the best VALIDATION accuracy so far
  (ties: the earlier one); we report that cell's TEST accuracy — never the best test accuracy;
- every run goes through the same ``SearchEngine`` (``search.run.run_search``) as
  ``archlore search --space nb201``: table backend (one slot), novelty filter on the canonical
  cell, a run store (in a temporary directory, in memory where /dev/shm exists), the trace is
  read back from the store in candidate-id order.

Everything is deterministic per (strategy, dataset, seed). Runs are spread over processes.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from archlore.search.protocol import Mutator
from archlore.search.registry import STRATEGIES
from archlore.search.spaces.nb201_table import DATASETS, NB201Table, resolve_dataset
from archlore.search.store import RunStore

CHECKPOINTS: tuple[int, ...] = (25, 50, 100, 200, 500)
RESULT_COLUMNS = ("strategy", "dataset", "seed", "budget", "valid_acc", "test_acc", "arch")
IMAGE_SHAPES = {"cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "ImageNet16-120": (3, 16, 120)}


@dataclass
class RunTrace:
    """One (strategy, dataset, seed) run: the queries in order with their table answers
    (accuracies in %; NaN for a failed query, e.g. the mutator produced no cell)."""

    strategy: str
    dataset: str
    seed: int
    archs: list[str] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    proposals: int = 0  # including duplicates and failures
    duplicates: int = 0

    def best_at(self, budget: int) -> tuple[int, float, float, str]:
        """(query index, valid %, test %, arch) of the best-valid cell in the first ``budget``
        queries. Selection by validation accuracy; the test accuracy is only reported."""
        n = min(budget, len(self.valid))
        if n == 0:
            return -1, math.nan, math.nan, ""
        valid = np.asarray(self.valid[:n], dtype=float)
        if np.isnan(valid).all():
            return -1, math.nan, math.nan, ""
        i = int(np.nanargmax(valid))  # the first maximum; failed queries are NaN
        return i, self.valid[i], self.test[i], self.archs[i]

    def curve(self, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """Best-so-far (by valid) valid and test accuracy after 1..budget queries (NaN-padded
        when the run ended early)."""
        v = np.full(budget, np.nan)
        t = np.full(budget, np.nan)
        best = -math.inf
        best_test = math.nan
        for k in range(min(budget, len(self.valid))):
            if self.valid[k] > best:  # NaN (failed query) never wins
                best, best_test = self.valid[k], self.test[k]
            v[k], t[k] = best, best_test
        return v, t


@dataclass
class BenchSpec:
    """What to run. ``mutator_factory`` must be picklable (a module-level function) when
    ``processes > 1``; it builds the mutator LLM-driven strategies use (offline by default)."""

    table: str | Path
    datasets: Sequence[str] = DATASETS
    strategies: Sequence[str] = ("random", "rea", "fairnad", "llmatic")
    budget: int = 500
    seeds: Sequence[int] = tuple(range(30))
    processes: int = max(1, min(2, os.cpu_count() or 1))
    mutator_factory: Callable[[], Mutator] | None = None
    knowledge_factory: Callable[[], Any] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per strategy
    max_proposals_factor: int = 20  # stop a run after budget * factor proposals (stuck)

    def checkpoints(self) -> list[int]:
        return sorted({c for c in CHECKPOINTS if c <= self.budget} | {self.budget})


def run_once(strategy: str, dataset: str, seed: int, spec: BenchSpec) -> RunTrace:
    """One engine run of ``strategy`` for ``spec.budget`` queries against the table."""
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search

    dataset = resolve_dataset(dataset)
    cfg = SearchConfig(name="bench", space="nb201", strategy=strategy, dataset=dataset,
                       table=str(spec.table), budget=spec.budget, seed=seed,
                       max_proposals_factor=spec.max_proposals_factor,
                       options=dict(spec.options.get(strategy, {})))
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="archlore-bench-", dir=shm) as tmp:
        run_search(cfg, tmp, mutator=spec.mutator_factory() if spec.mutator_factory else None,
                   knowledge=spec.knowledge_factory() if spec.knowledge_factory else None,
                   write_outputs=False)
        with RunStore(Path(tmp) / "bench", create=False) as store:
            cands = store.candidates()
    trace = RunTrace(strategy, dataset, seed, proposals=len(cands))
    for c in cands:
        if c.status == "duplicate":
            trace.duplicates += 1
            continue
        ev = c.evaluation
        trace.archs.append(c.arch or "" if ev is not None and ev.ok else "")
        trace.valid.append(ev.val_acc * 100.0 if ev is not None and ev.ok else math.nan)
        trace.test.append(ev.test_acc * 100.0 if ev is not None and ev.ok else math.nan)
    return trace


def _job(args: tuple[str, str, int, BenchSpec]) -> RunTrace:
    return run_once(*args)


def run_bench(spec: BenchSpec, progress: Callable[[RunTrace], None] | None = None
              ) -> list[RunTrace]:
    """All (strategy, dataset, seed) runs; results in a fixed order whatever the process
    scheduling."""
    for s in spec.strategies:
        STRATEGIES.get(s)  # fail fast on an unknown name
    datasets = [resolve_dataset(d) for d in spec.datasets]
    NB201Table(spec.table, datasets[0])  # fail fast on a missing table
    jobs = [(s, d, seed, spec) for d in datasets for s in spec.strategies for seed in spec.seeds]
    traces: list[RunTrace] = []
    if spec.processes <= 1 or len(jobs) == 1:
        for j in jobs:
            traces.append(_job(j))
            if progress:
                progress(traces[-1])
        return traces
    with ProcessPoolExecutor(max_workers=spec.processes) as pool:
        for tr in pool.map(_job, jobs, chunksize=1):
            traces.append(tr)
            if progress:
                progress(tr)
    return traces


# --- outputs ------------------------------------------------------------------------------

def result_rows(traces: Sequence[RunTrace], checkpoints: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for tr in traces:
        for b in checkpoints:
            _, v, t, arch = tr.best_at(b)
            rows.append({"strategy": tr.strategy, "dataset": tr.dataset, "seed": tr.seed,
                         "budget": b, "valid_acc": round(v, 6), "test_acc": round(t, 6),
                         "arch": arch})
    return rows


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        w.writerows(rows)


@dataclass
class Summary:
    """Mean ± std (over seeds) of the selected cell's test accuracy, per cell of the table."""

    dataset: str
    strategy: str
    budget: int
    mean: float
    std: float
    valid_mean: float
    n: int


def summarize(rows: Sequence[dict[str, Any]]) -> list[Summary]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["strategy"], int(r["budget"])), []).append(r)
    out = []
    for (d, s, b), rs in groups.items():
        t = np.array([float(r["test_acc"]) for r in rs])
        v = np.array([float(r["valid_acc"]) for r in rs])
        out.append(Summary(d, s, b, float(np.nanmean(t)), float(np.nanstd(t)),
                           float(np.nanmean(v)), len(rs)))
    return out


def queries_to_best(traces: Sequence[RunTrace], budget: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (dataset, strategy): mean ± std of the 1-based query at which the finally
    selected cell was found."""
    acc: dict[tuple[str, str], list[int]] = {}
    for tr in traces:
        i, *_ = tr.best_at(budget)
        acc.setdefault((tr.dataset, tr.strategy), []).append(i + 1)
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in acc.items()}


def markdown_table(summaries: Sequence[Summary], checkpoints: Sequence[int]) -> str:
    """One markdown table per dataset: strategies x checkpoints, test acc mean ± std (%)."""
    parts = []
    datasets = [d for d in DATASETS if any(s.dataset == d for s in summaries)]
    for d in datasets:
        strategies = list(dict.fromkeys(s.strategy for s in summaries if s.dataset == d))
        head = "| strategy | " + " | ".join(f"{b} queries" for b in checkpoints) + " |"
        lines = [f"**{d}** (test accuracy % of the best-validation cell, mean ± std over seeds)",
                 "", head, "|---|" + "---|" * len(checkpoints)]
        for s in strategies:
            cells = []
            for b in checkpoints:
                m = next((x for x in summaries if (x.dataset, x.strategy, x.budget) == (d, s, b)),
                         None)
                cells.append(f"{m.mean:.2f} ± {m.std:.2f}" if m else "–")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def plot_curves(traces: Sequence[RunTrace], budget: int, path: Path) -> None:
    """Best-so-far test accuracy (of the best-valid cell) vs queries, mean ± std band,
    one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in DATASETS if any(t.dataset == d for t in traces)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    x = np.arange(1, budget + 1)
    for ax, d in zip(axes[0], datasets, strict=True):
        for s in dict.fromkeys(t.strategy for t in traces):
            curves = np.array([t.curve(budget)[1] for t in traces
                               if t.dataset == d and t.strategy == s])
            if curves.size == 0:
                continue
            m, sd = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
            ax.plot(x, m, label=s)
            ax.fill_between(x, m - sd, m + sd, alpha=0.15)
        ax.set_xscale("log")
        ax.set_title(d)
        ax.set_xlabel("queries (cells scored)")
        ax.set_ylabel("test acc. of best-valid cell (%)")
        finite = np.concatenate([np.array(t.test) for t in traces if t.dataset == d])
        if finite.size:
            top = float(np.nanmax(finite))
            ax.set_ylim(top - 8, top + 0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
