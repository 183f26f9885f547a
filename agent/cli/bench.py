"""``archlore bench nb201`` (strategies on the NAS-Bench-201 table) and
``archlore bench nb201-convert`` (official API file -> archlore's CSV)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(help="Benchmarks: strategies compared on NAS-Bench-201.",
                        no_args_is_help=True)
console = Console()


def offline_mutator():  # module level: picklable for worker processes
    """The general offline mutator (it hands NB201 requests to agent.offline_nb201)."""
    try:
        from archlore.agent.offline import OfflineMutator

        return OfflineMutator()
    except ImportError:
        from archlore.agent.offline_nb201 import NB201OfflineMutator

        return NB201OfflineMutator()


def _llm_mutator(llm: str, model: str | None):
    from archlore.agent.mutators import make_mutator

    return make_mutator(llm, model=model)


PRESETS = {
    "peers": ("random", "rea", "rea-tuned", "local", "tpe", "prior", "fairnad"),
    "ablations": ("fairnad", "fairnad-paper", "fairnad-fair", "fairnad-nostart", "fairnad-flat",
                  "fairnad-randideas", "fairnad-bare", "prior"),
    "pareto": ("fairnad", "nsga2", "motpe"),
}


def _split(values: list[str], known: tuple[str, ...] | None = None) -> list[str]:
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    out = [x for v in out for x in PRESETS.get(v, (v,))]
    out = list(dict.fromkeys(out))
    if known is not None and any(v.lower() == "all" for v in out):
        return list(known)
    return out


@bench_app.command("nb201")
def nb201(
    dataset: list[str] = typer.Option(
        ["cifar10"], "--dataset", "-d",
        help="cifar10 | cifar100 | ImageNet16-120 | all (repeatable or comma list)."),
    strategies: str = typer.Option(
        "random,rea,fairnad,llmatic", "--strategies", "-s",
        help="Comma list of configurations: registered strategies, named ones (rea-tuned, "
             "motpe, fairnad-paper, fairnad-nostart, fairnad-flat, fairnad-randideas, "
             "fairnad-bare, ...), STRATEGY:key=value:..., or presets peers / ablations / "
             "pareto."),
    task: str = typer.Option("original", "--task",
                             help="original | permuted (misleading prior) | all; comma list."),
    objectives: str = typer.Option("val_acc,macs", "--objectives",
                                   help="Run objectives (the second is FairNAD's cost and the "
                                        "hypervolume's): val_acc,macs or val_acc,params."),
    budget: int = typer.Option(500, min=1, help="Queries (new cells scored) per run."),
    seeds: int = typer.Option(30, min=1, help="Number of seeds per strategy and dataset."),
    seed_start: int = typer.Option(0, help="First seed (seeds are seed_start ... +seeds-1)."),
    table: Path | None = typer.Option(
        None, "--table", envvar="ARCHLORE_NB201_TABLE",
        help="NAS-Bench-201 CSV (see `archlore bench nb201-convert`)."),
    out: Path = typer.Option(Path("bench-nb201"), "--out", "-o", help="Output directory."),
    processes: int = typer.Option(2, min=1, help="Worker processes (runs are spread over them)."),
    llm: str = typer.Option("offline", help="Mutator for LLM-driven strategies: offline "
                            "(default, no LLM) or an LLM backend name (slow: one call per query)."),
    model: str | None = typer.Option(None, help="LLM model id when --llm is not offline."),
    population: int = typer.Option(10, help="REA population size P."),
    sample: int = typer.Option(3, help="REA tournament size S."),
) -> None:
    """Run strategies on the NAS-Bench-201 table: select by validation accuracy, report the
    test accuracy of the selected cell. Writes OUT/results.csv, OUT/curves.png, OUT/summary.md."""
    from archlore.search.bench import (
        CONFIGS,
        PEERS,
        TASKS,
        BenchSpec,
        compare,
        comparison_table,
        hv_rows,
        hv_table,
        markdown_table,
        plot_curves,
        queries_to_best,
        resolve_config,
        result_rows,
        run_bench,
        summarize,
        write_results,
    )
    from archlore.search.spaces.nb201_table import DATASETS, resolve_dataset

    if table is None:
        raise typer.BadParameter("give the table with --table PATH or ARCHLORE_NB201_TABLE",
                                 param_hint="--table")
    if not table.is_file():
        raise typer.BadParameter(f"no such file: {table}", param_hint="--table")
    try:
        datasets = [resolve_dataset(d) for d in _split(dataset, DATASETS)]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dataset") from None
    names = _split([strategies])
    unknown = []
    for s in names:
        try:
            resolve_config(s)
        except (KeyError, ValueError):
            unknown.append(s)
    if unknown or not names:
        from archlore.search.registry import list_strategies

        raise typer.BadParameter(f"unknown strategies {unknown} (known: "
                                 f"{', '.join(list_strategies() + sorted(CONFIGS))})",
                                 param_hint="--strategies")
    tasks = _split([task], TASKS)
    if any(t not in TASKS for t in tasks):
        raise typer.BadParameter(f"unknown task in {tasks} (known: {', '.join(TASKS)})",
                                 param_hint="--task")
    objs = _split([objectives])
    factory = offline_mutator if llm == "offline" else functools.partial(_llm_mutator, llm, model)
    spec = BenchSpec(table=table, datasets=datasets, strategies=names, budget=budget,
                     seeds=range(seed_start, seed_start + seeds), processes=processes,
                     mutator_factory=factory, tasks=tasks, objectives=objs,
                     options={"rea": {"population": population, "sample": sample}})
    total = len(tasks) * len(datasets) * len(names) * seeds
    started = time.perf_counter()
    done = 0

    def progress(_trace) -> None:
        nonlocal done
        done += 1
        if done % max(1, total // 20) == 0 or done == total:
            console.print(f"[dim]{done}/{total} runs, {time.perf_counter() - started:.0f}s[/dim]")

    try:
        traces = run_bench(spec, progress=progress)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    wall = time.perf_counter() - started
    checkpoints = spec.checkpoints()
    rows = result_rows(traces, checkpoints)
    out.mkdir(parents=True, exist_ok=True)
    write_results(rows, out / "results.csv")
    parts = []
    for tk in tasks:
        task_rows = [r for r in rows if r["task"] == tk]
        to_best = queries_to_best([tr for tr in traces if tr.task == tk], budget)
        summaries = summarize(task_rows)
        parts.append(f"## task: {tk}\n\n" + markdown_table(summaries, checkpoints))
        for d in datasets:
            t = Table(title=f"[{tk}] {d}: test acc. (%) of the best-validation cell, mean ± std "
                            f"over {seeds} seeds")
            t.add_column("strategy")
            for b in checkpoints:
                t.add_column(f"{b} q", justify="right")
            t.add_column("queries to best", justify="right")
            for s in names:
                cells = []
                for b in checkpoints:
                    m = next(x for x in summaries if (x.dataset, x.strategy, x.budget) == (d, s, b))
                    cells.append(f"{m.mean:.2f} ± {m.std:.2f}")
                q = to_best[(d, s)]
                t.add_row(s, *cells, f"{q[0]:.0f} ± {q[1]:.0f}")
            console.print(t)
    peers = [p for p in names if p in PEERS or p.split(":")[0] in ("rea", "tpe", "local")]
    for s in [n for n in names if n.startswith("fairnad")]:
        comps = compare(rows, s, peers)
        if comps:
            parts.append(f"## {s} vs the best peer (paired over seeds)\n\n"
                         + comparison_table(comps))
            # the same on validation, what the search selects by: a test deficit with a
            # validation lead is the selected cell's validation-test gap, not a worse search
            parts.append(f"## {s} vs the best peer on validation accuracy (the selection "
                         f"criterion)\n\n"
                         + comparison_table(compare(rows, s, peers, metric="valid_acc")))
            t = Table(title=f"{s} − best peer (mean of per-seed differences; paired t-test p)")
            for col in ("task", "dataset", "queries", "best peer", "diff", "p"):
                t.add_column(col)
            for c in comps:
                t.add_row(c.task, c.dataset, str(c.budget), c.best_peer, f"{c.diff:+.3f}",
                          f"{c.p_ttest:.3g}")
            console.print(t)
    cost = objs[1] if len(objs) > 1 and objs[1] in ("macs", "params") else None
    if cost is not None:
        hv = hv_rows(traces, table, cost, [b for b in (50, 100, 200) if b <= budget] or [budget])
        parts.append(f"## hypervolume (val_acc x {cost})\n\n" + hv_table(hv))
    plot_curves(traces, budget, out / "curves.png")
    (out / "summary.md").write_text("\n".join(parts))
    console.print(f"{total} runs in {wall:.1f}s ({processes} processes); wrote "
                  f"{out / 'results.csv'}, {out / 'curves.png'}, {out / 'summary.md'}")


@bench_app.command("nb201-convert")
def nb201_convert(
    source: Path = typer.Argument(..., help="Official benchmark file (NATS-tss or NAS-Bench-201 "
                                  ".pth); needs the nats_bench or nas_201_api package."),
    out: Path = typer.Argument(..., help="CSV to write."),
    hp: str = typer.Option("200", help="Training epochs of the accuracies (200 or 12)."),
) -> None:
    """Convert the official NAS-Bench-201 / NATS-Bench data to archlore's CSV."""
    from archlore.search.spaces.nb201_table import convert_api, load_api

    try:
        api = load_api(source)
    except ImportError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    n = convert_api(api, out, hp=hp)
    console.print(f"wrote {n} cells to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
