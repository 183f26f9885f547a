"""``archlore search``, ``archlore report NAME`` and ``archlore runs list``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from archlore.agent import config as paths
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)
runs_app = typer.Typer(help="Inspect search runs.", no_args_is_help=True)


class _LiveView:
    """Rich renderable over the engine's latest snapshot (refreshed by rich.live)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.snap: dict[str, Any] = {}
        self.t0 = time.monotonic()

    def update(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def __rich__(self) -> Table:
        s = self.snap
        best = s.get("best_val_acc")
        t = Table(title=f"archlore search {self.name}", show_header=False, min_width=44)
        t.add_column(style="bold")
        t.add_column(justify="right")
        rows = [
            ("evaluated", f"{s.get('evaluated', 0)} / {s.get('budget', '?')}"),
            ("in flight", str(s.get("in_flight", 0))),
            ("valid", str(s.get("valid", 0))),
            ("rejected as duplicate", str(s.get("duplicates", 0))),
            ("rejected by evaluator", str(s.get("rejected", 0))),
            ("failed", str(s.get("failed", 0))),
            ("repaired", str(s.get("repaired", 0))),
            ("front size", str(s.get("front_size", 0))),
            ("best val acc", "-" if best is None else f"{100 * best:.2f} %"),
            ("hypervolume", f"{s.get('hypervolume', 0.0):.4f}"),
            ("tokens used", str(s.get("tokens", 0))),
            ("elapsed", f"{time.monotonic() - self.t0:.0f} s"),
        ]
        for k, v in rows:
            t.add_row(k, v)
        return t


def _knowledge(path: str | None):
    from archlore.knowledge.store import KnowledgeStore, StoreError

    try:
        return KnowledgeStore(Path(path) if path else paths.knowledge_dir())
    except StoreError as exc:  # damaged ideas.json / papers.json: say which, change nothing
        err_console.print(f"[red]archlore search: {exc}[/red]")
        raise typer.Exit(2) from None


def _remaining_llm_budget(cfg: Any, spent: Any) -> Any:
    """On resume the LLM caps cover the whole run: subtract what its candidates already used."""
    llm = cfg.llm.model_copy()
    if llm.max_total_tokens is not None:
        used = spent.prompt_tokens + spent.completion_tokens
        llm.max_total_tokens = max(0, int(llm.max_total_tokens) - used)
    if llm.max_cost_usd is not None:
        llm.max_cost_usd = max(0.0, float(llm.max_cost_usd) - spent.cost_usd)
    return cfg.model_copy(update={"llm": llm})


def search_cmd(
    config_file: Path | None = typer.Option(None, "--config", help="TOML or YAML config file."),
    name: str | None = typer.Option(None, "--name", help="Run name (default: a timestamp)."),
    seed: int | None = typer.Option(None, "--seed"),
    budget: int | None = typer.Option(None, "--budget", help="Candidates to evaluate."),
    dataset: str | None = typer.Option(None, "--dataset", help="digits, cifar10, ..."),
    data_root: str | None = typer.Option(None, "--data-root", help="Dataset directory."),
    space: str | None = typer.Option(None, "--space", help="open | nb201"),
    strategy: str | None = typer.Option(None, "--strategy", help="fairnad, rea, random, ..."),
    llm: str | None = typer.Option(None, "--llm", help="offline (default), openai, replay"),
    model: str | None = typer.Option(None, "--model", help="LLM model name."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="OpenAI-compatible server URL (or env OPENAI_BASE_URL)."),
    mode: str | None = typer.Option(None, "--mode", help="LLM answer form: delta (default) | full."),
    record: Path | None = typer.Option(None, "--record", help="Write every LLM call to a cassette."),
    cassette: Path | None = typer.Option(None, "--cassette", help="--llm replay: cassette to use."),
    llm_budget_tokens: int | None = typer.Option(
        None, "--llm-budget-tokens", help="Stop making LLM calls after this many tokens."),
    table: str | None = typer.Option(
        None, "--table", help="NAS-Bench-201 CSV for --space nb201 (or env ARCHLORE_NB201_TABLE)."),
    knowledge: str | None = typer.Option(None, "--knowledge", help="Knowledge store dir."),
    workers: int | None = typer.Option(None, "--workers"),
    objectives: str | None = typer.Option(
        None, "--objectives", help="2 or 3 objectives, comma-separated: val_acc, macs, params, "
        "latency_ms, latency_batch_ms, or a backend metric NAME:min|max (default val_acc,macs)."),
    backend: str | None = typer.Option(
        None, "--backend", help="Evaluation backend: pool | table | ray (default: the space's)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="--backend ray: auto or HOST:PORT (default: start Ray here)."),
    epochs: float | None = typer.Option(None, "--epochs", help="Training epochs per candidate."),
    max_mflops: float | None = typer.Option(
        None, "--max-mflops", help="Cap in millions of MACs per image (archlore's FLOPs = MACs)."),
    max_params: int | None = typer.Option(None, "--max-params"),
    novelty_threshold: float | None = typer.Option(None, "--novelty-threshold"),
    repair_turns: int | None = typer.Option(None, "--repair-turns"),
    n_seeds: int | None = typer.Option(None, "--n-seeds"),
    assignments: list[str] = typer.Option(
        [], "--set", help="Any config field: KEY=VALUE (JSON values; dots for nested keys)."),
    resume: str | None = typer.Option(None, "--resume", help="Continue the run NAME."),
    live: bool = typer.Option(True, "--live/--no-live", help="Rich live progress view."),
) -> None:
    """Search architectures (FairNAD by default). With no arguments: digits, offline mutator,
    built-in corpus, 2 workers -- a few minutes on 2 CPU cores."""
    from archlore.search.config import ConfigError, build_config
    from archlore.search.engine import ResumeMismatch
    from archlore.search.run import RunExists, run_search
    from archlore.search.store import RunStoreError

    overrides = dict(name=resume or name, seed=seed, budget=budget, dataset=dataset,
                     data_root=data_root, space=space, strategy=strategy, llm=llm, model=model,
                     knowledge=knowledge, table=table, workers=workers, epochs=epochs,
                     max_mflops=max_mflops, max_params=max_params, novelty_threshold=novelty_threshold,
                     repair_turns=repair_turns, n_seeds=n_seeds, backend=backend,
                     ray_address=ray_address,
                     objectives=[o.strip() for o in objectives.split(",") if o.strip()]
                     if objectives else None)
    try:
        if resume:
            from archlore.search.store import RunStore

            with RunStore(paths.runs_dir() / resume, create=False) as st:
                saved = st.get_meta("config")
                spent = st.usage()
            if saved is None:
                raise RunStoreError(f"run {resume!r} has no saved config")
            cfg = _remaining_llm_budget(build_config(base=saved), spent)
            given = [k for k, v in overrides.items() if v is not None and k != "name"]
            if given or config_file or assignments:
                err_console.print(f"[yellow]--resume uses the saved config; ignoring "
                                  f"{', '.join(given) or 'the other options'}[/yellow]")
        else:
            cfg = build_config(config_file, overrides, assignments).with_name()
            llm_given = {k: v for k, v in dict(
                base_url=base_url, mode=mode, max_total_tokens=llm_budget_tokens,
                record=str(record) if record else None,
                cassette=str(cassette) if cassette else None).items() if v is not None}
            if llm_given:  # saved with the run's config, so --resume talks to the same LLM
                cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update=llm_given)})
        from archlore.agent.mutators import make_mutator

        mutator = make_mutator(cfg.llm.backend, **cfg.llm.mutator_options())
        kn = _knowledge(cfg.knowledge)
        view = _LiveView(cfg.name or "")
        if live and console.is_terminal:
            from rich.live import Live

            with Live(view, console=console, refresh_per_second=4):
                result = run_search(cfg, paths.runs_dir(), mutator=mutator, knowledge=kn,
                                    resume=bool(resume), progress=view.update)
        else:
            last = [0.0]

            def plain(snap: dict[str, Any]) -> None:
                if time.monotonic() - last[0] > 5 or snap["told"] == 1:
                    last[0] = time.monotonic()
                    console.print(f"evaluated {snap['evaluated']}/{snap['budget']} valid "
                                  f"{snap['valid']} duplicates {snap['duplicates']} front "
                                  f"{snap['front_size']} hv {snap['hypervolume']:.4f}")

            result = run_search(cfg, paths.runs_dir(), mutator=mutator, knowledge=kn,
                                resume=bool(resume), progress=plain)
    except (ConfigError, RunExists, RunStoreError, ResumeMismatch, KeyError, ValueError) as exc:
        # str(KeyError) is the repr of its message (quoted): print the message itself
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        err_console.print(f"[red]archlore search: {msg}[/red]")
        raise typer.Exit(2) from None
    c = result.counts
    console.print(
        f"[bold]{result.name}[/bold] {result.status} in {result.seconds:.0f} s: "
        f"{c['evaluated']} evaluated, {c['valid']} valid, {c['duplicates']} near-duplicates, "
        f"{result.repaired} repaired; front {len(result.front)} models, best val acc "
        + ("-" if result.best_val_acc is None else f"{100 * result.best_val_acc:.2f} %")
        + f", hypervolume {result.hypervolume:.4f}")
    console.print(f"outputs: {result.run_dir}/report.html, pareto.csv, pareto.png, models/")
    if result.stop_reason:
        console.print(f"[yellow]stopped early: {result.stop_reason}[/yellow]")
    if result.status != "finished":
        console.print(f"resume with: archlore search --resume {result.name}")
        raise typer.Exit(130)


def report_cmd(name: str = typer.Argument(..., help="Run name (see `archlore runs list`).")) -> None:
    """Rebuild a run's outputs (pareto.csv, pareto.png, models/, report.html) from its store."""
    from archlore.search.report import write_outputs
    from archlore.search.store import RunStore, RunStoreError

    try:
        with RunStore(paths.runs_dir() / name, create=False) as store:
            out = write_outputs(store)
    except RunStoreError as exc:
        err_console.print(f"[red]archlore report: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{out.html}\n{out.csv} ({len(out.models)} front models)\n{out.png}")


@runs_app.command("list")
def runs_list() -> None:
    """Runs in the data directory: name, strategy, dataset, candidates, best, status."""
    from archlore.search.store import RunStore

    table = Table("name", "strategy", "space", "dataset", "candidates", "valid", "best val acc",
                  "status")
    for db in sorted(paths.runs_dir().glob("*/run.db")):
        with RunStore(db.parent, create=False) as st:
            cfg = st.get_meta("config", {}) or {}
            s = st.summary()
            status = st.get_meta("status", "?")
        best = s["best_val_acc"]
        table.add_row(db.parent.name, cfg.get("strategy", "?"), cfg.get("space", "?"),
                      cfg.get("dataset", "?"), str(s["candidates"]), str(s["valid"]),
                      "-" if best is None else f"{100 * best:.2f} %", str(status))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("search")(search_cmd)
    app.command("report")(report_cmd)
    app.add_typer(runs_app, name="runs")
