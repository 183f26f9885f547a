"""``archlore proxy-check``: is the cheap proxy's ranking of architectures trustworthy?

Scores a sample of architectures (random open-space ones, or a run's candidates) at the proxy
budget under several seeds, and optionally at a reference budget; prints sigma2_arch,
sigma2_noise, SNR, rho_P(SNR), the closed form's predicted Spearman and -- with a reference --
the measured Spearman / Kendall (all and top-k) with bootstrap intervals. See docs/proxy.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from archlore.agent import config as paths
from archlore.agent.cli.common import console, fail, print_json
from archlore.evaluator.records import Recipe

_RECIPE = Recipe()


def _run_codes(name: str, n: int) -> list[str]:
    from archlore.search.store import RunStore, RunStoreError

    try:
        with RunStore(paths.runs_dir() / name, create=False) as store:
            cands = [c for c in store.candidates() if c.valid and c.code]
    except RunStoreError as exc:
        fail("proxy-check", exc)
    cands.sort(key=lambda c: (-(c.evaluation.val_acc or 0.0), c.id))
    if len(cands) > n:  # spread over the run's accuracy range, best included
        cands = [cands[round(i * (len(cands) - 1) / (n - 1))] for i in range(n)] if n > 1 \
            else cands[:1]
    return [c.code for c in cands]


def proxy_check_cmd(
    dataset: str = typer.Option("digits", "--dataset", help="digits, synthetic, fashion-mnist, ..."),
    epochs: float = typer.Option(1.0, "--epochs", help="Proxy budget (epochs per candidate)."),
    ref_epochs: float | None = typer.Option(
        None, "--ref-epochs", help="Higher fidelity to compare against (e.g. 10)."),
    archs: int = typer.Option(30, "--archs", min=3, help="Architectures to sample."),
    seeds: int = typer.Option(3, "--seeds", min=2, help="Seeds per architecture (proxy)."),
    ref_seeds: int | None = typer.Option(None, "--ref-seeds", min=1,
                                         help="Seeds at the reference budget (default: --seeds)."),
    run: str | None = typer.Option(None, "--run", help="Take the architectures from run NAME."),
    top_k: int | None = typer.Option(None, "--top-k", help="Also on the k best (default N/3)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Cap on proxy steps."),
    ref_max_steps: int | None = typer.Option(None, "--ref-max-steps"),
    batch_size: int = typer.Option(_RECIPE.batch_size),
    lr: float = typer.Option(_RECIPE.lr),
    seed: int = typer.Option(0, "--seed", help="First training seed; also the sampling seed."),
    workers: int = typer.Option(2, "--workers", min=1),
    data_root: str | None = typer.Option(None, "--data-root", envvar="ARCHLORE_DATA"),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds per evaluation."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples."),
    out: Path | None = typer.Option(None, "--out", help="Write the report as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Measure how far the proxy's ranking can be trusted (SNR = sigma2_arch / sigma2_noise)."""
    from archlore.evaluator.data import DatasetError, get_spec
    from archlore.evaluator.pool import EvaluatorPool
    from archlore.evaluator.records import EvalConfig
    from archlore.search.proxy import format_report, measure, sample_codes

    try:
        get_spec(dataset, data_root)
    except DatasetError as exc:
        fail("proxy-check", exc)
    codes = _run_codes(run, archs) if run else sample_codes(dataset, archs, seed, data_root)
    if len(codes) < 3:
        fail("proxy-check", f"only {len(codes)} architectures to score; need at least 3")
    cfg = EvalConfig(dataset=dataset, data_root=data_root, seed=seed, batch_size=batch_size,
                     lr=lr, timeout_s=timeout, measure_latency=False)
    n = len(codes) * (seeds + ((ref_seeds or seeds) if ref_epochs else 0))
    if not as_json:
        console.print(f"proxy-check: {len(codes)} architectures on {dataset}, {n} trainings "
                      f"({workers} workers)")
    with EvaluatorPool(workers) as pool:
        rep = measure(codes, cfg, pool.submit, epochs=epochs, seeds=seeds, ref_epochs=ref_epochs,
                      ref_seeds=ref_seeds, top_k=top_k, n_boot=bootstrap, max_steps=max_steps,
                      ref_max_steps=ref_max_steps)
    if out is not None:
        out.write_text(json.dumps(rep.model_dump(mode="json"), indent=1))
    if as_json:
        print_json(rep.model_dump(mode="json"))
        return
    style = {"trustworthy": "green", "rough": "yellow"}.get(rep.verdict, "red")
    for line in format_report(rep):
        if line.startswith("verdict"):
            console.print(f"[{style}]{line}[/{style}]", highlight=False)
        else:
            console.print(line, highlight=False, markup=False)
    console.print(f"{rep.seconds:.0f} s", style="dim")


def register(app: typer.Typer) -> None:
    app.command("proxy-check")(proxy_check_cmd)
