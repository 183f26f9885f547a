"""``archlore evaluate MODEL.py``: score one candidate file through the evaluation cascade."""

from __future__ import annotations

from pathlib import Path

import typer
from archlore.agent.cli.common import EXIT_NOTHING_FOUND, console, fail, pct, print_json
from archlore.evaluator.records import Recipe


def _table(evaluation, path: Path):  # -> rich.table.Table
    from rich.table import Table

    def fmt(value, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    style = {"ok": "green", "rejected": "yellow"}.get(evaluation.status, "red")
    table = Table(title=f"archlore evaluate {path.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("status", f"[{style}]{evaluation.status}[/{style}]")
    table.add_row("stage", evaluation.stage)
    if evaluation.reason:
        table.add_row("reason", evaluation.reason)
    table.add_row("dataset / seed", f"{evaluation.dataset} / {evaluation.seed}")
    table.add_row("val acc", pct(evaluation.val_acc))
    table.add_row("test acc", pct(evaluation.test_acc))
    table.add_row("MACs per image", "—" if evaluation.macs is None
                  else f"{evaluation.macs:,} ({evaluation.macs / 1e6:.3f} M)")
    table.add_row("params", fmt(evaluation.params, ","))
    table.add_row("train seconds", fmt(evaluation.train_seconds, ".2f"))
    table.add_row("throughput (img/s)", fmt(evaluation.throughput, ",.0f"))
    if evaluation.loss_curve:
        table.add_row("loss first → last",
                      f"{evaluation.loss_curve[0]:.3f} → {evaluation.loss_curve[-1]:.3f}")
    table.add_row("stage seconds", ", ".join(f"{t.stage} {t.seconds:.2f}"
                                             for t in evaluation.timings))
    table.add_row("worker start-up s", fmt(evaluation.startup_seconds, ".3f"))
    table.add_row("containment", "\n".join(evaluation.containment) or "— (no worker started)")
    return table


# The one source of default training settings (search, ask and evaluate share it), so a
# front model's "reproduce:" line gives the run's numbers.
_RECIPE = Recipe()


def evaluate_command(
    model: Path = typer.Argument(..., help="Python file defining `class Net(nn.Module)`.",
                                 exists=True, dir_okay=False, readable=True),
    dataset: str = typer.Option("digits", help="digits, synthetic, cifar10, cifar100, "
                                               "imagenet16-120 (the last three need --data-root)."),
    epochs: float = typer.Option(_RECIPE.epochs, help="Training epochs (fractions allowed)."),
    max_steps: int | None = typer.Option(None, help="Cap on optimizer steps."),
    max_train_seconds: float | None = typer.Option(None, help="Cap on training seconds."),
    batch_size: int = typer.Option(_RECIPE.batch_size),
    lr: float = typer.Option(_RECIPE.lr, help="Peak learning rate of the one-cycle schedule."),
    weight_decay: float = typer.Option(_RECIPE.weight_decay),
    label_smoothing: float = typer.Option(_RECIPE.label_smoothing),
    max_mflops: float | None = typer.Option(
        None, "--max-mflops", help="Cap on MACs per image, in millions (1 MAC = 2 FLOPs in "
                                   "torch's counter); over-cap models are rejected untrained."),
    max_params: int | None = typer.Option(None, help="Cap on parameters; rejected untrained."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:1 or auto."),
    data_root: Path | None = typer.Option(None, envvar="ARCHLORE_DATA",
                                             help="Directory with dataset files."),
    timeout: float = typer.Option(300.0, help="Wall-clock seconds before the worker is killed."),
    threads: int = typer.Option(1, help="CPU threads for the worker."),
    download: bool = typer.Option(False, "--download", help="Download the dataset into "
                                  "--data-root if missing (cifar10/cifar100/mnist/fashion-mnist)."),
    as_json: bool = typer.Option(False, "--json", help="Print the Evaluation as JSON "
                                 "(accuracies as fractions)."),
) -> None:
    """Score MODEL.py: static policy, contained worker, shape check, MACs/params, proxy
    training, validation and test accuracy. Exit code 1 unless the status is ok."""
    from archlore.evaluator import EvalConfig, evaluate

    cfg = EvalConfig(dataset=dataset, epochs=epochs, max_steps=max_steps,
                     max_train_seconds=max_train_seconds, batch_size=batch_size, lr=lr,
                     weight_decay=weight_decay, label_smoothing=label_smoothing,
                     max_mmacs=max_mflops, max_params=max_params, seed=seed, device=device,
                     data_root=str(data_root) if data_root else None, timeout_s=timeout,
                     cpu_threads=threads)
    from archlore.evaluator.data import DatasetError, get_spec

    try:
        get_spec(dataset, cfg.data_root)
        if download:
            from archlore.evaluator.download import ensure_dataset, rich_progress

            with rich_progress() as bar:
                ensure_dataset(dataset, cfg.data_root, download=True, progress=bar)
    except DatasetError as exc:
        fail("evaluate", exc)
    evaluation = evaluate(model.read_text(encoding="utf-8", errors="replace"), cfg)
    if as_json:
        print_json(evaluation.model_dump(mode="json"))
    else:
        console.print(_table(evaluation, model))
    raise typer.Exit(0 if evaluation.ok else EXIT_NOTHING_FOUND)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
