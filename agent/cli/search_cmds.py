"""``archlore search``, ``archlore report NAME`` and ``archlore runs list|show|compare``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from archlore.agent import config as paths
from archlore.agent.cli.common import (
    EXIT_INTERRUPTED,
    console,
    err_console,
    fail,
    pct,
    print_json,
    warn,
)
from archlore.agent.cli.llm_progress import LLMActivity, llm_progress, printer
from rich.markup import escape
from rich.table import Table

runs_app = typer.Typer(help="Inspect search runs.", no_args_is_help=True)


class _LiveView:
    """Rich renderable over the engine's latest snapshot (refreshed by rich.live)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.snap: dict[str, Any] = {}
        self.t0 = time.monotonic()
        self.llm = LLMActivity()

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
            ("LLM call", self.llm.line),
            ("elapsed", f"{time.monotonic() - self.t0:.0f} s"),
        ]
        for k, v in rows:
            t.add_row(k, v)
        return t


def _knowledge(path: str | None):
    from archlore.knowledge.store import KnowledgeStore, StoreError

    try:
        return KnowledgeStore(Path(path) if path else paths.knowledge_dir())
    except StoreError as exc:  # damaged store, or not a store: say which, change nothing
        fail("search", exc)


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
    mode: str | None = typer.Option(
        None, "--mode", help="LLM answer form: delta (default) | full | structured (JSON edits "
        "of the parent's ArchSpec / NB201 cell, schema-constrained)."),
    context_tokens: int | None = typer.Option(
        None, "--context-tokens", help="Prompt + answer budget in tokens (default: the "
        "server's reported context)."),
    record: Path | None = typer.Option(None, "--record", help="Write every LLM call to a cassette."),
    cassette: Path | None = typer.Option(None, "--cassette", help="--llm replay: cassette to use."),
    llm_budget_tokens: int | None = typer.Option(
        None, "--llm-budget-tokens", help="Stop making LLM calls after this many tokens."),
    table: str | None = typer.Option(
        None, "--table", help="NAS-Bench-201 CSV for --space nb201 (or env ARCHLORE_NB201_TABLE)."),
    knowledge: str | None = typer.Option(None, "--knowledge", help="Knowledge store dir."),
    workers: int | None = typer.Option(
        None, "--workers", help="Evaluation slots: on this machine (pool), per node (ray)."),
    objectives: str | None = typer.Option(
        None, "--objectives", help="2 or 3 objectives, comma-separated: val_acc, macs, params, "
        "latency_ms, latency_batch_ms, or a backend metric NAME:min|max (default val_acc,macs)."),
    backend: str | None = typer.Option(
        None, "--backend", help="Evaluation backend: pool | table | ray (default: the space's)."),
    devices: str | None = typer.Option(
        None, "--devices", help="Evaluation devices, comma-separated: cpu (default), auto, "
        "cuda, cuda:1 (one GPU per worker)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="--backend ray: auto or HOST:PORT (default: start Ray here)."),
    epochs: float | None = typer.Option(None, "--epochs", help="Training epochs per candidate."),
    max_mflops: float | None = typer.Option(
        None, "--max-mflops", help="Cap in millions of MACs per image (archlore's FLOPs = MACs)."),
    max_params: int | None = typer.Option(None, "--max-params"),
    novelty_threshold: float | None = typer.Option(None, "--novelty-threshold"),
    repair_turns: int | None = typer.Option(None, "--repair-turns"),
    n_seeds: int | None = typer.Option(None, "--n-seeds"),
    rungs: str | None = typer.Option(
        None, "--rungs", help="Multi-fidelity (ASHA): epochs per rung, comma-separated, e.g. "
        "1,3,9; every candidate gets the first, the best 1/--reduction of each rung the next."),
    reduction: int | None = typer.Option(
        None, "--reduction", help="With --rungs: promote 1 in this many of a rung (default 3)."),
    assignments: list[str] = typer.Option(
        [], "--set", help="Any config field: KEY=VALUE (JSON values; dots for nested keys)."),
    download: bool = typer.Option(
        False, "--download", help="Download cifar10 / cifar100 / mnist / fashion-mnist into "
        "the data root if missing (default: <data dir>/datasets)."),
    resume: str | None = typer.Option(None, "--resume", help="Continue the run NAME."),
    live: bool = typer.Option(True, "--live/--no-live", help="Rich live progress view."),
) -> None:
    """Search architectures (FairNAD by default). With no arguments: digits, offline mutator,
    built-in corpus, 2 workers -- a few minutes on 2 CPU cores."""
    from archlore.evaluator.data import DatasetError
    from archlore.search.config import ConfigError, build_config, parse_rungs
    from archlore.search.engine import ResumeMismatch
    from archlore.search.run import RunExists, run_search
    from archlore.search.store import RunStoreError

    try:
        rung_list = parse_rungs(rungs) if rungs is not None else None
        if reduction is not None and reduction < 2:
            raise ConfigError(f"--reduction: must be 2 or more, got {reduction}")
    except ConfigError as exc:
        fail("search", exc)
    overrides = dict(name=resume or name, rungs=rung_list, reduction=reduction, seed=seed, budget=budget, dataset=dataset,
                     data_root=data_root, space=space, strategy=strategy, llm=llm, model=model,
                     knowledge=knowledge, table=table, workers=workers, epochs=epochs,
                     max_mflops=max_mflops, max_params=max_params, novelty_threshold=novelty_threshold,
                     repair_turns=repair_turns, n_seeds=n_seeds, backend=backend,
                     download=download or None,
                     ray_address=ray_address,
                     devices=[d.strip() for d in devices.split(",") if d.strip()] if devices else None,
                     objectives=[o.strip() for o in objectives.split(",") if o.strip()]
                     if objectives else None)
    try:
        if resume:
            from archlore.search.store import RunStore

            with RunStore(paths.runs_dir() / resume, create=False) as st:
                saved = st.get_meta("config")
                spent = st.usage()
                status, summary = st.get_meta("status"), st.summary()
            if saved is None:
                raise RunStoreError(f"run {resume!r} has no saved config")
            if status == "finished":  # nothing left to do: do not restart the workers
                console.print(f"run {resume} is already finished ({summary['evaluated']} "
                              f"evaluated, best val acc {pct(summary['best_val_acc'])}); "
                              f"see archlore runs show {resume}")
                return
            cfg = _remaining_llm_budget(build_config(base=saved), spent)
            given = [k for k, v in overrides.items() if v is not None and k != "name"]
            if given or config_file or assignments:
                err_console.print(f"[yellow]--resume uses the saved config; ignoring "
                                  f"{', '.join(given) or 'the other options'}[/yellow]")
        else:
            cfg = build_config(config_file, overrides, assignments).with_name()
            if cfg.download and not cfg.data_root:  # a download needs somewhere to go
                cfg = cfg.model_copy(update={"data_root": str(paths.data_dir() / "datasets")})
            if cfg.download:
                from archlore.evaluator.download import ensure_dataset, rich_progress

                with rich_progress() as bar:
                    ensure_dataset(cfg.dataset, cfg.data_root, download=True, progress=bar)
            llm_given = {k: v for k, v in dict(
                base_url=base_url, mode=mode, max_total_tokens=llm_budget_tokens,
                context_tokens=context_tokens,
                record=str(record) if record else None,
                cassette=str(cassette) if cassette else None).items() if v is not None}
            if llm_given:  # saved with the run's config, so --resume talks to the same LLM
                cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update=llm_given)})
        from archlore.agent.mutators import make_mutator

        mutator = make_mutator(cfg.llm.backend, **cfg.llm.mutator_options())
        kn = _knowledge(cfg.knowledge)
        view = _LiveView(cfg.name or "")
        console.print(escape(
            f"{'resuming' if resume else 'starting'} run {cfg.name}: {cfg.strategy} on "
            f"{cfg.space} / {cfg.dataset}, budget {cfg.budget}, objectives "
            f"{', '.join(cfg.objectives)}, mutator {cfg.llm.backend}; outputs in "
            f"{paths.runs_dir() / (cfg.name or '')}"))
        if live and console.is_terminal:
            from rich.live import Live

            with Live(view, console=console, refresh_per_second=4), llm_progress(view.llm):
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

            with llm_progress(printer(console)):
                result = run_search(cfg, paths.runs_dir(), mutator=mutator, knowledge=kn,
                                    resume=bool(resume), progress=plain)
    except (ConfigError, RunExists, RunStoreError, ResumeMismatch, DatasetError, KeyError,
            ValueError, FileNotFoundError) as exc:
        fail("search", exc)
    c = result.counts
    console.print(
        f"[bold]{result.name}[/bold] {result.status} in {result.seconds:.0f} s: "
        f"{c['evaluated']} evaluated, {c['valid']} valid, {c['duplicates']} near-duplicates, "
        f"{result.repaired} repaired; front {len(result.front)} models, best val acc "
        + ("-" if result.best_val_acc is None else f"{100 * result.best_val_acc:.2f} %")
        + f", hypervolume {result.hypervolume:.4f}")
    console.print(f"outputs: {result.run_dir}/report.html, pareto.csv, pareto.png, models/")
    _say_unsupported(Path(result.run_dir))
    if result.stop_reason:
        warn("search", f"stopped early: {result.stop_reason}")
    if result.status != "finished":
        console.print(f"resume with: archlore search --resume {result.name}")
        raise typer.Exit(EXIT_INTERRUPTED)


def _say_unsupported(run_dir: Path) -> None:
    """How many ideas the mutator could not apply, and why (e.g. no structured edits)."""
    from archlore.search.store import RunStore

    with RunStore(run_dir, create=False) as st:
        state = st.get_meta("strategy_state") or {}
    skipped = state.get("unsupported_ideas") or {}
    if skipped:
        reasons: dict[str, int] = {}
        for why in skipped.values():
            reasons[why] = reasons.get(why, 0) + 1
        console.print(escape(f"{len(skipped)} ideas could not be applied by this mutator and "
                             "were left out: " + "; ".join(f"{n} with {why}" for why, n in
                                                          sorted(reasons.items()))
                             + " (an LLM mutator can apply them: --llm openai)"))


def report_cmd(name: str = typer.Argument(..., help="Run name (see `archlore runs list`).")) -> None:
    """Rebuild a run's outputs (pareto.csv, pareto.png, models/, report.html) from its store."""
    from archlore.search.report import write_outputs
    from archlore.search.store import RunStore, RunStoreError

    try:
        with RunStore(paths.runs_dir() / name, create=False) as store:
            out = write_outputs(store)
    except RunStoreError as exc:
        fail("report", exc)
    console.print(f"{out.html}\n{out.csv} ({len(out.models)} front models)\n{out.png}")


def _run_row(db: Path) -> dict[str, Any]:
    from archlore.search.config import SearchConfig
    from archlore.search.store import RunStore, RunStoreError

    try:
        with RunStore(db.parent, create=False) as st:
            raw = st.get_meta("config", {}) or {}
            s = st.summary()
            status = st.get_meta("status", "?")
            seconds = st.get_meta("seconds")
    except RunStoreError as exc:
        return {"name": db.parent.name, "status": "damaged", "error": str(exc)}
    try:
        cfg = SearchConfig.model_validate(raw)
        strategy, space, dataset = cfg.strategy, cfg.space, cfg.dataset
        objectives = cfg.objectives
    except ValueError:
        strategy, space, dataset, objectives = (raw.get("strategy", "?"), raw.get("space", "?"),
                                                raw.get("dataset", "?"), [])
    return {"name": db.parent.name, "strategy": strategy, "space": space, "dataset": dataset,
            "objectives": objectives, "candidates": s["candidates"], "valid": s["valid"],
            "best_val_acc": s["best_val_acc"], "status": status, "seconds": seconds}


@runs_app.command("list")
def runs_list(as_json: bool = typer.Option(False, "--json", help="One JSON list.")) -> None:
    """Runs in the data directory: name, strategy, dataset, candidates, best, status."""
    rows = [_run_row(db) for db in sorted(paths.runs_dir().glob("*/run.db"))]
    if as_json:
        print_json(rows)
        return
    if not console.is_terminal:  # piped: tab-separated, names whole
        for r in rows:
            print("\t".join(str(r.get(k, "")) for k in ("name", "strategy", "space", "dataset",
                                                         "candidates", "valid", "status")))
        return
    table = Table("name", "strategy", "space", "dataset", "candidates", "valid", "best val acc",
                  "status")
    table.columns[0].no_wrap = True  # the name is what report / --resume need, never cut
    table.columns[0].min_width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        table.add_row(r["name"], str(r.get("strategy", "")), str(r.get("space", "")),
                      str(r.get("dataset", "")), str(r.get("candidates", "")),
                      str(r.get("valid", "")), pct(r.get("best_val_acc")), str(r["status"]))
    console.print(table)


def _open_run(name: str, command: str):
    from archlore.search.store import RunStore, RunStoreError

    try:
        return RunStore(paths.runs_dir() / name, create=False)
    except RunStoreError as exc:
        fail(command, exc)


@runs_app.command("show")
def runs_show(name: str = typer.Argument(..., help="Run name."),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """A run's summary: config, counts, front (objectives, test accuracy), outputs."""
    from archlore.search.front import front_of
    from archlore.search.objectives import get_objectives

    row = _run_row(paths.runs_dir() / name / "run.db")
    if row.get("status") == "damaged":
        fail("runs show", row["error"])
    with _open_run(name, "runs show") as st:
        objectives = get_objectives(row["objectives"] or ["val_acc", "macs"])
        front = front_of(st.candidates(), objectives)
    members = [{"id": c.id, **{o.name: o.value(c.evaluation) for o in objectives},
                "test_acc": c.evaluation.test_acc, "operator": c.operator,
                "idea_id": c.idea_id} for c in front]
    if as_json:
        print_json({**row, "front": members})
        return
    console.print(f"[bold]{name}[/bold]: {row['strategy']} on {row['space']} / "
                  f"{row['dataset']}, status {row['status']}, {row['candidates']} candidates, "
                  f"{row['valid']} valid, best val acc {pct(row['best_val_acc'])}"
                  + (f", {row['seconds']:.0f} s" if row.get("seconds") else ""))
    table = Table("id", *(o.label for o in objectives), "test acc", "operator", "idea",
                  title=f"Pareto front ({len(members)})")
    for m in members:
        table.add_row(str(m["id"]), *(o.display(m[o.name]) for o in objectives),
                      pct(m["test_acc"]), m["operator"], m["idea_id"] or "-")
    console.print(table)
    console.print(f"report: {paths.runs_dir() / name / 'report.html'}")


@runs_app.command("compare")
def runs_compare(names: list[str] = typer.Argument(..., help="Two or more run names."),
                 out: Path | None = typer.Option(None, "--out", help="PNG to write "
                                                 "(default: compare.png here).")) -> None:
    """Put the fronts of several runs on one plot (their first two objectives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from archlore.search.front import front_of
    from archlore.search.objectives import get_objectives

    if len(names) < 2:
        fail("runs compare", "name at least two runs")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    shared = None
    for name in names:
        row = _run_row(paths.runs_dir() / name / "run.db")
        if row.get("status") == "damaged":
            fail("runs compare", row["error"])
        objectives = get_objectives(row["objectives"] or ["val_acc", "macs"])[:2]
        if shared is not None and [o.name for o in objectives] != [o.name for o in shared]:
            fail("runs compare", f"run {name} has objectives {[o.name for o in objectives]}, "
                                 f"not {[o.name for o in shared]}")
        shared = objectives
        q, cost = objectives
        with _open_run(name, "runs compare") as st:
            front = sorted(front_of(st.candidates(), objectives),
                           key=lambda c: cost.minimised(cost.value(c.evaluation)))
        xs = [cost.value(c.evaluation) * cost.scale for c in front]
        ys = [q.value(c.evaluation) * q.scale for c in front]
        ax.step(xs, ys, where="post", lw=1.5)
        ax.scatter(xs, ys, s=24, label=f"{name} ({len(front)})")
    assert shared is not None
    ax.set_xlabel(shared[1].label)
    ax.set_ylabel(shared[0].label)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    path = out or Path("compare.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("search")(search_cmd)
    app.command("report")(report_cmd)
    app.add_typer(runs_app, name="runs")
