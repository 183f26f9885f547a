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

Configurations: a run is named by a *configuration* -- a registered strategy name, or one of
:data:`CONFIGS` (a strategy plus options: tuned peers, FairNAD ablations), or
``STRATEGY:key=value:key=value`` (e.g. ``rea:population=20:sample=5``).

Tasks: ``original`` (the table as published) and ``permuted`` (:class:`PermutedTable`: the
accuracies, MACs and parameters of every cell are those of the cell whose operation labels
are mapped by :data:`PERMUTATION` -- a task on which knowledge-derived priors point the
wrong way; no new data).

Everything is deterministic per (configuration, task, dataset, seed). Runs are spread over
processes.
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
from archlore.evaluator.records import Evaluation
from archlore.search.protocol import Mutator
from archlore.search.registry import STRATEGIES
from archlore.search.spaces.nb201_table import DATASETS, NB201Table, resolve_dataset
from archlore.search.store import RunStore

CHECKPOINTS: tuple[int, ...] = (25, 50, 100, 200, 500)
HV_CHECKPOINTS: tuple[int, ...] = (50, 100, 200)
RESULT_COLUMNS = ("strategy", "task", "dataset", "seed", "budget", "valid_acc", "test_acc",
                  "arch")
TASKS = ("original", "permuted")
# The misleading-prior task's fixed permutation of operation labels (an involution): the cell
# a strategy queries is answered with the row of the cell whose labels are mapped by it, so
# 3x3 convolutions now score as average pooling did and vice versa, 1x1 convolutions as skip
# connections and vice versa; ``none`` stays (a cut edge stays cut, liveness is unchanged).
PERMUTATION: dict[str, str] = {"nor_conv_3x3": "avg_pool_3x3", "avg_pool_3x3": "nor_conv_3x3",
                               "nor_conv_1x1": "skip_connect", "skip_connect": "nor_conv_1x1",
                               "none": "none"}

# Named configurations: (strategy, options). REA's tuned setting is the best of the grid in
# ``REA_GRID`` on held-out seeds (100-109, all three datasets, mean test accuracy at 25-500
# queries); see docs/nb201.md for the grid's figures.
REA_GRID: tuple[tuple[int, int], ...] = tuple((p, s) for p in (10, 20, 50) for s in (3, 5, 10))
REA_TUNED = (10, 10)
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "rea": ("rea", {"population": 10, "sample": 3}),  # the NAS-Bench-201 paper's
    "rea-tuned": ("rea", {"population": REA_TUNED[0], "sample": REA_TUNED[1]}),
    "motpe": ("tpe", {"multi_objective": True}),
    "fairnad-paper": ("fairnad", {"sampler": "fair", "screen": 1, "mutation": {"local": 0},
                                  "prior_check": False}),
    # FairNAD before the local climb and the evidence-checked prior (issue 17, first round)
    "fairnad-nolocal": ("fairnad", {"mutation": {"local": 0}, "prior_check": False}),
    "fairnad-fair": ("fairnad", {"sampler": "fair"}),
    # the round-2 default (session 4): classic start cells, prior not checked
    "fairnad-r2": ("fairnad", {"start": "classic", "prior_check": False,
                               "mutation": {"local": 3.0}}),
    # the round-3 default (session 5): mixed start, prior checked, `local` weight 3
    "fairnad-r3": ("fairnad", {"mutation": {"local": 3.0}}),
    "fairnad-pstart": ("fairnad", {"prior_start": True, "n_seeds": 7}),  # after seeing `prior`
    "fairnad-nostart": ("fairnad", {"start": "random"}),
    "fairnad-flat": ("fairnad", {"prior": "flat"}),
    "fairnad-randideas": ("fairnad", {"ideas": "random"}),
    "fairnad-bare": ("fairnad", {"start": "random", "prior": "flat", "ideas": "random"}),
}
PEERS = ("random", "rea", "rea-tuned", "local", "tpe", "llmatic")  # not knowledge-driven


def resolve_config(name: str) -> tuple[str, dict[str, Any]]:
    """``name`` -> (registered strategy, options). A ``#tag`` suffix only labels a variant
    (its options come from ``BenchSpec.options[name]``)."""
    name = name.partition("#")[0]
    if name in CONFIGS:
        strategy, opts = CONFIGS[name]
        return strategy, dict(opts)
    strategy, *pairs = name.split(":")
    opts: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"configuration {name!r}: expected key=value, got {pair!r}")
        opts[key] = _literal(value)
    STRATEGIES.get(strategy)  # KeyError on an unknown strategy
    return strategy, opts


def _literal(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def permute_arch(arch: str, permutation: dict[str, str] = PERMUTATION) -> str:
    from archlore.search.spaces.nb201 import format_arch, parse_arch

    return format_arch([permutation[op] for op in parse_arch(arch)])


class PermutedTable:
    """A ``ScoreTable`` (``search.backends.table``) answering each cell with the row of the
    cell whose operation labels are mapped by ``permutation``."""

    def __init__(self, table: NB201Table, permutation: dict[str, str] = PERMUTATION) -> None:
        if sorted(permutation) != sorted(permutation.values()):
            raise ValueError(f"not a permutation of the operations: {permutation}")
        self.table = table
        self.dataset = table.dataset
        self.permutation = dict(permutation)

    def evaluate(self, arch: str) -> Evaluation:
        from archlore.search.spaces.nb201 import ArchError

        try:
            mapped = permute_arch(arch, self.permutation)
        except (ArchError, KeyError) as exc:
            return Evaluation(status="rejected", stage="build", dataset=self.dataset,
                              reason=f"not a NAS-Bench-201 cell: {exc}")
        return self.table.evaluate(mapped)


def open_task_table(path: str | Path, dataset: str, task: str = "original") -> Any:
    table = NB201Table(path, dataset)
    if task == "original":
        return table
    if task == "permuted":
        return PermutedTable(table)
    raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")


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
    macs: list[float] = field(default_factory=list)
    params: list[float] = field(default_factory=list)
    task: str = "original"
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

    def hypervolume(self, budget: int, cost: str, box: tuple[float, float, float, float]
                    ) -> float:
        """Normalised hypervolume of (validation accuracy up, ``cost`` down) over the first
        ``budget`` queries; ``box`` = (ideal acc, ideal cost, reference acc, reference cost)."""
        from archlore.search.pareto import normalised_hypervolume_k

        n = min(budget, len(self.valid))
        c = self.macs if cost == "macs" else self.params
        pts = [(v, x) for v, x in zip(self.valid[:n], c[:n], strict=True) if not math.isnan(v)]
        if not pts:
            return 0.0
        return normalised_hypervolume_k(pts, [True, False], [box[0], box[1]], [box[2], box[3]])

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
    strategies: Sequence[str] = ("random", "rea", "fairnad", "llmatic")  # configurations
    budget: int = 500
    seeds: Sequence[int] = tuple(range(30))
    processes: int = max(1, min(2, os.cpu_count() or 1))
    mutator_factory: Callable[[], Mutator] | None = None
    knowledge_factory: Callable[[], Any] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per configuration
    max_proposals_factor: int = 20  # stop a run after budget * factor proposals (stuck)
    tasks: Sequence[str] = ("original",)
    objectives: Sequence[str] = ("val_acc", "macs")

    def checkpoints(self) -> list[int]:
        return sorted({c for c in CHECKPOINTS if c <= self.budget} | {self.budget})


def run_once(strategy: str, dataset: str, seed: int, spec: BenchSpec,
             task: str = "original") -> RunTrace:
    """One engine run of configuration ``strategy`` for ``spec.budget`` queries against the
    table of ``task``."""
    from archlore.search.backends.table import TableBackend
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search

    dataset = resolve_dataset(dataset)
    name, opts = resolve_config(strategy)
    opts.update(spec.options.get(strategy, {}))
    cfg = SearchConfig(name="bench", space="nb201", strategy=name, dataset=dataset,
                       table=str(spec.table), budget=spec.budget, seed=seed,
                       max_proposals_factor=spec.max_proposals_factor,
                       objectives=list(spec.objectives), options=opts)
    backend = (None if task == "original"
               else TableBackend(open_task_table(spec.table, dataset, task), workers=1))
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="archlore-bench-", dir=shm) as tmp:
        run_search(cfg, tmp, mutator=spec.mutator_factory() if spec.mutator_factory else None,
                   knowledge=spec.knowledge_factory() if spec.knowledge_factory else None,
                   backend=backend, write_outputs=False)
        with RunStore(Path(tmp) / "bench", create=False) as store:
            cands = store.candidates()
    trace = RunTrace(strategy, dataset, seed, proposals=len(cands), task=task)
    for c in cands:
        if c.status == "duplicate":
            trace.duplicates += 1
            continue
        ev = c.evaluation
        trace.archs.append(c.arch or "" if ev is not None and ev.ok else "")
        trace.valid.append(ev.val_acc * 100.0 if ev is not None and ev.ok else math.nan)
        trace.test.append(ev.test_acc * 100.0 if ev is not None and ev.ok else math.nan)
        trace.macs.append(float(ev.macs) if ev is not None and ev.ok and ev.macs else math.nan)
        trace.params.append(float(ev.params) if ev is not None and ev.ok and ev.params
                            else math.nan)
    return trace


def _job(args: tuple[str, str, int, BenchSpec, str]) -> RunTrace:
    s, d, seed, spec, task = args
    return run_once(s, d, seed, spec, task)


def run_bench(spec: BenchSpec, progress: Callable[[RunTrace], None] | None = None
              ) -> list[RunTrace]:
    """All (strategy, dataset, seed) runs; results in a fixed order whatever the process
    scheduling."""
    for s in spec.strategies:
        resolve_config(s)  # fail fast on an unknown name
    for t in spec.tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r} (known: {', '.join(TASKS)})")
    datasets = [resolve_dataset(d) for d in spec.datasets]
    NB201Table(spec.table, datasets[0])  # fail fast on a missing table
    jobs = [(s, d, seed, spec, t) for t in spec.tasks for d in datasets for s in spec.strategies
            for seed in spec.seeds]
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
            rows.append({"strategy": tr.strategy, "task": tr.task, "dataset": tr.dataset,
                         "seed": tr.seed,
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


# --- comparisons ----------------------------------------------------------------------------

@dataclass
class Comparison:
    """``strategy`` vs the best (by mean) of ``peers`` at one checkpoint, paired by seed."""

    task: str
    dataset: str
    budget: int
    strategy: str
    mean: float
    best_peer: str
    peer_mean: float
    diff: float  # strategy - best peer, mean of the per-seed differences
    p_ttest: float  # two-sided paired t-test
    p_wilcoxon: float  # two-sided Wilcoxon signed-rank (NaN when all differences are 0)
    n: int


def compare(rows: Sequence[dict[str, Any]], strategy: str, peers: Sequence[str],
            metric: str = "test_acc") -> list[Comparison]:
    """Per (task, dataset, budget): ``strategy`` against its best peer, paired over seeds, on
    ``metric`` of the selected cell (``valid_acc``: on the criterion the search selects by)."""
    from scipy import stats as st

    by: dict[tuple[str, str, int, str], dict[int, float]] = {}
    for r in rows:
        key = (r.get("task", "original"), r["dataset"], int(r["budget"]), r["strategy"])
        by.setdefault(key, {})[int(r["seed"])] = float(r[metric])
    out = []
    for (task, d, b, s) in sorted(k for k in by if k[3] == strategy):
        mine = by[(task, d, b, s)]
        cands = [p for p in peers if (task, d, b, p) in by and p != strategy]
        if not cands:
            continue
        best = max(cands, key=lambda p: float(np.nanmean(list(by[(task, d, b, p)].values()))))
        theirs = by[(task, d, b, best)]
        seeds = sorted(set(mine) & set(theirs))
        x = np.array([mine[k] for k in seeds])
        y = np.array([theirs[k] for k in seeds])
        diff = x - y
        if len(seeds) > 1 and np.any(diff != 0):
            p_t = float(st.ttest_rel(x, y).pvalue)
            p_w = float(st.wilcoxon(x, y).pvalue)
        else:
            p_t, p_w = (1.0, math.nan)
        out.append(Comparison(task, d, b, s, float(x.mean()), best, float(y.mean()),
                              float(diff.mean()), p_t, p_w, len(seeds)))
    return out


def comparison_table(comps: Sequence[Comparison]) -> str:
    lines = ["| task | dataset | queries | strategy | mean | best peer | peer mean | diff | "
             "paired t p | Wilcoxon p |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        lines.append(f"| {c.task} | {c.dataset} | {c.budget} | {c.strategy} | {c.mean:.2f} | "
                     f"{c.best_peer} | {c.peer_mean:.2f} | {c.diff:+.3f} | {c.p_ttest:.3g} | "
                     f"{c.p_wilcoxon:.3g} |")
    return "\n".join(lines) + "\n"


def hv_box(table: str | Path, dataset: str, cost: str) -> tuple[float, float, float, float]:
    """(ideal valid %, ideal cost, reference valid %, reference cost) over the whole table:
    the box every run's hypervolume is normalised in (cost in raw units)."""
    t = NB201Table(table, dataset)
    v = [e.valid_acc for e in t.entries()]
    c = [(e.flops_M if cost == "macs" else e.params_M) * 1e6 for e in t.entries()]
    return max(v), min(c), min(v), max(c)


def hv_rows(traces: Sequence[RunTrace], table: str | Path, cost: str,
            checkpoints: Sequence[int] = HV_CHECKPOINTS) -> list[dict[str, Any]]:
    boxes: dict[str, tuple[float, float, float, float]] = {}
    rows = []
    for tr in traces:
        if tr.dataset not in boxes:
            boxes[tr.dataset] = hv_box(table, tr.dataset, cost)
        for b in checkpoints:
            rows.append({"strategy": tr.strategy, "task": tr.task, "dataset": tr.dataset,
                         "seed": tr.seed, "budget": b, "cost": cost,
                         "hv": tr.hypervolume(b, cost, boxes[tr.dataset])})
    return rows


def hv_table(rows: Sequence[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    budgets: set[int] = set()
    for r in rows:
        groups.setdefault((r["cost"], r["dataset"], r["strategy"]), {}).setdefault(
            int(r["budget"]), []).append(float(r["hv"]))
        budgets.add(int(r["budget"]))
    bs = sorted(budgets)
    lines = ["| objectives | dataset | strategy | " + " | ".join(f"HV@{b}" for b in bs) + " |",
             "|---|---|---|" + "---|" * len(bs)]
    for (cost, d, s), per in groups.items():
        cells = [f"{np.mean(per[b]):.4f} ± {np.std(per[b]):.4f}" if b in per else "–" for b in bs]
        lines.append(f"| val_acc x {cost} | {d} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
