"""NAS-Bench-201 benchmark: FairNAD against tuned peers, ablations, the misleading-prior
task and the accuracy x cost fronts, all through the engine of ``archlore search``.

    python benchmarks/bench_nb201.py [--table PATH] [--out DIR] [--seeds 30] [--budget 500]
        [--seed-start 0] [--processes 2] [--phases main,permuted,pareto,ablations,grid]

Phases (each writes OUT/PHASE/results.csv and summary.md, and prints them):
- ``main``: peers (random, REA paper + tuned, local search), the prior alone and FairNAD
  (default, with the prior's best cell first, and the paper's sampling) on the original table; FairNAD vs the best peer
  at every checkpoint, paired over seeds;
- ``tpe``: Optuna TPE on both tasks at 100 queries (its ask is O(trials));
- ``permuted``: the same on the misleading-prior task (``search.bench.PermutedTable``);
- ``pareto``: FairNAD, NSGA-II and multi-objective TPE with objectives val_acc x params and
  val_acc x MACs, hypervolume at 50/100/200 queries;
- ``ablations``: FairNAD without start cells / flat prior / random ideas / all three;
- ``grid``: REA's tuning grid (``search.bench.REA_GRID``) on held-out seeds 100+.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archlore.agent.cli.bench import offline_mutator  # noqa: E402
from archlore.search.bench import (  # noqa: E402
    PEERS,
    REA_GRID,
    BenchSpec,
    compare,
    comparison_table,
    hv_rows,
    hv_table,
    markdown_table,
    result_rows,
    run_bench,
    summarize,
    write_results,
)
from archlore.search.spaces.nb201_table import DATASETS  # noqa: E402

MAIN = ("random", "rea", "rea-tuned", "local", "prior", "fairnad", "fairnad-pstart",
        "fairnad-paper")
TPE_BUDGET = 100  # Optuna TPE's ask is O(trials): 500-query runs take minutes each
ABLATIONS = ("fairnad", "fairnad-fair", "fairnad-nostart", "fairnad-flat", "fairnad-randideas",
             "fairnad-bare")
PARETO = ("fairnad", "nsga2", "motpe")  # motpe: minutes per 200-query run on a loaded machine


def run_phase(name: str, spec: BenchSpec, out: Path, fair: tuple[str, ...] = ()) -> str:
    t0 = time.perf_counter()
    traces = run_bench(spec)
    wall = time.perf_counter() - t0
    cps = spec.checkpoints()
    rows = result_rows(traces, cps)
    d = out / name
    write_results(rows, d / "results.csv")
    parts = [f"# {name}: {len(traces)} runs in {wall:.0f} s on {spec.processes} processes, "
             f"load {os.getloadavg()[0]:.1f}"]
    for task in spec.tasks:
        parts.append(f"## task: {task}\n\n" + markdown_table(
            summarize([r for r in rows if r["task"] == task]), cps))
    peers = [p for p in spec.strategies if p in PEERS or p.startswith("rea:")]
    for s in fair:
        if s in spec.strategies and peers:
            parts.append(f"## {s} vs the best peer\n\n" + comparison_table(compare(rows, s, peers)))
    if name == "pareto":
        cost = spec.objectives[1]
        parts.append(f"## hypervolume val_acc x {cost}\n\n"
                     + hv_table(hv_rows(traces, spec.table, cost)))
    text = "\n\n".join(parts)
    (d / "summary.md").write_text(text)
    print(text, flush=True)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=os.environ.get("ARCHLORE_NB201_TABLE")
                    or str(REPO.parent / "shared" / "data" / "nb201.csv"))
    ap.add_argument("--out", default="bench-nb201-out")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--phases", default="main,permuted,tpe,pareto,ablations,grid")
    ap.add_argument("--pareto", default=",".join(PARETO), help="configurations of the pareto phase")
    args = ap.parse_args()
    if not Path(args.table).is_file():
        sys.exit(f"NAS-Bench-201 table not found: {args.table} (use --table or ARCHLORE_NB201_TABLE)")
    out = Path(args.out)
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    common = dict(table=args.table, datasets=DATASETS, seeds=seeds, processes=args.processes,
                  mutator_factory=offline_mutator)
    for phase in args.phases.split(","):
        if phase == "main":
            run_phase("main", BenchSpec(strategies=MAIN, budget=args.budget, **common), out,
                      fair=("fairnad", "fairnad-paper"))
        elif phase == "permuted":
            run_phase("permuted", BenchSpec(strategies=MAIN, budget=args.budget,
                                            tasks=("permuted",), **common), out,
                      fair=("fairnad", "fairnad-paper"))
        elif phase == "tpe":
            run_phase("tpe", BenchSpec(strategies=("tpe",), budget=min(args.budget, TPE_BUDGET),
                                       tasks=("original", "permuted"), **common), out)
        elif phase == "pareto":
            for cost in ("params", "macs"):
                run_phase("pareto", BenchSpec(strategies=tuple(args.pareto.split(",")), budget=200,
                                              objectives=("val_acc", cost), **common),
                          out / cost)
        elif phase == "ablations":
            run_phase("ablations", BenchSpec(strategies=ABLATIONS, budget=min(args.budget, 100),
                                             **common), out)
        elif phase == "grid":
            grid = tuple(f"rea:population={p}:sample={s}" for p, s in REA_GRID)
            run_phase("grid", BenchSpec(**{**common, "seeds": range(100, 110)},
                                        strategies=grid, budget=args.budget), out)
        else:
            sys.exit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    main()
