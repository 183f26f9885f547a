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


def _split(values: list[str], known: tuple[str, ...] | None = None) -> list[str]:
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    if known is not None and any(v.lower() == "all" for v in out):
        return list(known)
    return out


@bench_app.command("nb201")
def nb201(
    dataset: list[str] = typer.Option(
        ["cifar10"], "--dataset", "-d",
        help="cifar10 | cifar100 | ImageNet16-120 | all (repeatable or comma list)."),
    strategies: str = typer.Option("random,rea,fairnad,llmatic", "--strategies", "-s",
                                   help="Comma list of registered strategies."),
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
        BenchSpec,
        markdown_table,
        plot_curves,
        queries_to_best,
        result_rows,
        run_bench,
        summarize,
        write_results,
    )
    from archlore.search.registry import list_strategies
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
    unknown = [s for s in names if s not in list_strategies()]
    if unknown or not names:
        raise typer.BadParameter(f"unknown strategies {unknown} (known: "
                                 f"{', '.join(list_strategies())})", param_hint="--strategies")
    factory = offline_mutator if llm == "offline" else functools.partial(_llm_mutator, llm, model)
    spec = BenchSpec(table=table, datasets=datasets, strategies=names, budget=budget,
                     seeds=range(seed_start, seed_start + seeds), processes=processes,
                     mutator_factory=factory,
                     options={"rea": {"population": population, "sample": sample}})
    total = len(datasets) * len(names) * seeds
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
    summaries = summarize(rows)
    to_best = queries_to_best(traces, budget)
    for d in datasets:
        t = Table(title=f"{d}: test acc. (%) of the best-validation cell, mean ± std over "
                        f"{seeds} seeds")
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
    plot_curves(traces, budget, out / "curves.png")
    (out / "summary.md").write_text(markdown_table(summaries, checkpoints))
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
