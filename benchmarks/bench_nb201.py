"""NAS-Bench-201 benchmark: 4 strategies x 3 datasets x 30 seeds x 500 queries, one command.

    python benchmarks/bench_nb201.py [--table PATH] [--out DIR] [--seeds 30] [--budget 500]
                                     [--seed-start 0] [--processes 2]

Prints the wall time, the per-dataset tables (test accuracy of the best-validation cell,
mean ± std over seeds) and whether FairNAD meets its target: mean test accuracy at 100 queries
>= REA's at the final budget, and >= REA's at every checkpoint. Writes results.csv,
curves.png and summary.md under --out (default: bench-nb201-out/).
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
    BenchSpec,
    markdown_table,
    plot_curves,
    queries_to_best,
    result_rows,
    run_bench,
    summarize,
    write_results,
)
from archlore.search.spaces.nb201_table import DATASETS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=os.environ.get("ARCHLORE_NB201_TABLE")
                    or str(REPO.parent / "shared" / "data" / "nb201.csv"))
    ap.add_argument("--out", default="bench-nb201-out")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    if not Path(args.table).is_file():
        sys.exit(f"NAS-Bench-201 table not found: {args.table} (use --table or ARCHLORE_NB201_TABLE)")

    strategies = ("random", "rea", "fairnad", "llmatic")
    spec = BenchSpec(table=args.table, datasets=DATASETS, strategies=strategies,
                     budget=args.budget, seeds=range(args.seed_start, args.seed_start + args.seeds),
                     processes=args.processes, mutator_factory=offline_mutator)
    t0 = time.perf_counter()
    traces = run_bench(spec)
    wall = time.perf_counter() - t0
    cps = spec.checkpoints()
    rows = result_rows(traces, cps)
    out = Path(args.out)
    write_results(rows, out / "results.csv")
    plot_curves(traces, args.budget, out / "curves.png")
    sums = summarize(rows)
    table = markdown_table(sums, cps)
    (out / "summary.md").write_text(table)

    runs = len(traces)
    queries = sum(len(t.archs) for t in traces)
    proposals = sum(t.proposals for t in traces)
    print(f"{runs} runs ({len(strategies)} strategies x {len(DATASETS)} datasets x {args.seeds} "
          f"seeds x {args.budget} queries) in {wall:.1f} s on {args.processes} processes "
          f"({1e3 * wall / queries:.2f} ms per query; {proposals} proposals incl. "
          f"{proposals - queries} duplicates told for free)\n")
    print(table)
    q = queries_to_best(traces, args.budget)
    print("queries to reach the finally selected cell (mean ± std):")
    for d in DATASETS:
        print(f"  {d}: " + ", ".join(f"{s} {q[(d, s)][0]:.0f} ± {q[(d, s)][1]:.0f}"
                                     for s in strategies))
    get = {(s.dataset, s.strategy, s.budget): s.mean for s in sums}
    print("\nFairNAD target (mean test acc.):")
    final = args.budget
    for d in DATASETS:
        f100, rea_final = get.get((d, "fairnad", 100)), get[(d, "rea", final)]
        every = [(b, get[(d, "fairnad", b)] - get[(d, "rea", b)]) for b in cps]
        ok100 = f100 is not None and f100 >= rea_final
        print(f"  {d}: FairNAD@100 {f100:.2f} vs REA@{final} {rea_final:.2f} -> "
              f"{'met' if ok100 else 'missed'} ({f100 - rea_final:+.2f}); every checkpoint "
              + ", ".join(f"{b}: {delta:+.2f}" for b, delta in every)
              + (" -> met" if all(x >= 0 for _, x in every) else " -> missed"))


if __name__ == "__main__":
    main()
