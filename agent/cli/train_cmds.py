"""``archlore train MODEL.py|RUN:ID`` (final training to convergence, checkpointed and
resumable) and ``archlore export DIR`` (ONNX + TorchScript, each verified by running it).

Training runs in this process (``evaluator.final``: the trust boundary is explained there):
use it on a front model you have read, or your own file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from archlore.agent import config as paths
from archlore.agent.cli.common import console, fail, print_json
from archlore.evaluator.records import Recipe

_RECIPE = Recipe()


def resolve_model(model: str) -> tuple[str, dict[str, Any], str]:
    """``MODEL.py`` or ``RUN:ID`` -> (source, what the run knows: dataset/recipe/seed, label).
    A model file written by a run's report names its dataset in its header."""
    path = Path(model)
    if path.is_file():
        code = path.read_text(encoding="utf-8", errors="replace")
        known: dict[str, Any] = {}
        m = re.search(r"^# dataset (\S+), seed (\d+)", code, re.M)
        if m:
            known = {"dataset": m.group(1).rstrip(","), "seed": int(m.group(2))}
        r = re.search(r"^# recipe: (.*)$", code, re.M)
        if r:  # "k=v, k=v" as the report writes it; the training fields only
            pairs = (kv.split("=", 1) for kv in r.group(1).split(", ") if "=" in kv)
            known["recipe"] = {k: float(v) for k, v in pairs
                               if k in ("lr", "weight_decay", "label_smoothing")}
            bs = re.search(r"\bbatch_size=(\d+)", r.group(1))
            if bs:
                known["recipe"]["batch_size"] = int(bs.group(1))
        return code, known, path.stem
    m = re.fullmatch(r"(.+):#?(\d+)", model)
    if not m:
        fail("train", f"{model!r} is neither a file nor RUN:ID")
    from archlore.search.store import RunStore, RunStoreError

    run, cid = m.group(1), int(m.group(2))
    try:
        with RunStore(paths.runs_dir() / run, create=False) as store:
            cand = store.get(cid)
            recipe = store.get_meta("recipe") or {}
            cfg = store.get_meta("config") or {}
    except RunStoreError as exc:
        fail("train", exc)
    if cand is None or not cand.code:
        fail("train", f"run {run} has no candidate {cid} with code")
    known = {"dataset": recipe.get("dataset") or cfg.get("dataset"), "seed": recipe.get("seed"),
             "data_root": cfg.get("data_root"),
             "recipe": {k: v for k, v in recipe.items() if k in Recipe.model_fields}}
    return cand.code, known, f"{run}-cand_{cid:04d}"


def train_cmd(
    model: str = typer.Argument(..., help="MODEL.py, or RUN:ID (a candidate of a run)."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Full training epochs."),
    dataset: str | None = typer.Option(None, "--dataset", help="Default: the run's / header's."),
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: runs/trained/NAME)."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    weight_decay: float | None = typer.Option(None, "--weight-decay"),
    label_smoothing: float | None = typer.Option(None, "--label-smoothing"),
    seed: int | None = typer.Option(None, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    data_root: str | None = typer.Option(None, "--data-root", envvar="ARCHLORE_DATA"),
    steps_per_epoch: int | None = typer.Option(
        None, "--steps-per-epoch", min=1, help="Cap on steps per epoch (smoke runs)."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Continue from OUT/checkpoint.pt when it is there."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train a model to convergence with the full recipe; save state_dict + model.py,
    a learning curve, and val/test accuracy. Ctrl-C keeps the last epoch's checkpoint."""
    from archlore.evaluator.final import FinalTrainingError, train_final

    code, known, label = resolve_model(model)
    dataset = dataset or known.get("dataset") or "digits"
    data_root = data_root or known.get("data_root")
    base = {**_RECIPE.model_dump(), **(known.get("recipe") or {})}
    given = {"batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
             "label_smoothing": label_smoothing}
    recipe = Recipe(**{**base, **{k: v for k, v in given.items() if v is not None}})
    seed = seed if seed is not None else int(known.get("seed") or 0)
    out = out or paths.runs_dir() / "trained" / f"{label}-{dataset}-{epochs}ep"
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}  val {task.fields[val]}"),
                   TimeRemainingColumn(), disable=as_json, console=console)
    task = None

    def progress(p: dict[str, Any]) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("train", total=p["steps"], epoch=p["epoch"], epochs=p["epochs"],
                                loss=p["loss"], val="-")
        val = f"{100 * p['val_acc']:.2f}%" if "val_acc" in p else None
        bar.update(task, completed=p["step"], epoch=p["epoch"], loss=p["loss"],
                   **({"val": val} if val else {}))

    try:
        with bar:
            res = train_final(code, out, dataset=dataset, epochs=epochs, recipe=recipe, seed=seed,
                              data_root=data_root, device=device, resume=resume, threads=threads,
                              steps_per_epoch=steps_per_epoch, progress=progress)
    except FinalTrainingError as exc:
        fail("train", exc)
    except KeyboardInterrupt:
        console.print(f"interrupted; resume with the same command (checkpoint in {out})")
        raise typer.Exit(130) from None
    if as_json:
        from dataclasses import asdict

        print_json(asdict(res))
        return
    console.print(f"trained {label} on {dataset} for {epochs} epochs"
                  + (f" (resumed after epoch {res.resumed_from_epoch})"
                     if res.resumed_from_epoch else "")
                  + f": val acc {100 * res.val_acc:.2f} %, test acc {100 * res.test_acc:.2f} %, "
                  f"{res.params:,} params, {res.seconds:.0f} s", highlight=False)
    for k, v in res.files.items():
        console.print(f"  {k}: {v}", highlight=False)
    console.print(f"export: archlore export {out} --dataset {dataset}", highlight=False)


def export_cmd(
    model_dir: Path = typer.Argument(..., help="A directory written by `archlore train`."),
    dataset: str | None = typer.Option(None, "--dataset",
                                       help="Default: the one in DIR/metrics.json."),
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: DIR)."),
    fmt: str = typer.Option("onnx,torchscript", "--format", help="onnx, torchscript or both."),
    data_root: str | None = typer.Option(None, "--data-root", envvar="ARCHLORE_DATA"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write ONNX (and TorchScript) files for deployment and verify each by running it on
    validation images against the PyTorch model. Exit code 1 if a requested format fails."""
    import json

    from archlore.evaluator.final import FinalTrainingError, export_model

    if not (model_dir / "weights.pt").is_file() or not (model_dir / "model.py").is_file():
        fail("export", f"{model_dir} has no weights.pt + model.py (run `archlore train` first)")
    if dataset is None:
        metrics = model_dir / "metrics.json"
        dataset = json.loads(metrics.read_text()).get("dataset") if metrics.is_file() else None
        if not dataset:
            fail("export", "pass --dataset (no metrics.json to read it from)")
    formats = tuple(f.strip() for f in fmt.split(",") if f.strip())
    bad = [f for f in formats if f not in ("onnx", "torchscript")]
    if bad:
        fail("export", f"unknown format(s) {bad}; use onnx, torchscript")
    try:
        results = export_model(model_dir, dataset, out_dir=out, formats=formats,
                               data_root=data_root)
    except FinalTrainingError as exc:
        fail("export", exc)
    if as_json:
        print_json(results)
    else:
        for name, r in results.items():
            if r["ok"]:
                console.print(f"[green]{name}[/green]: {r['path']} (verified: max |diff| "
                              f"{r['max_abs_diff']:.2e}, argmax agreement {100 * r['agree']:.0f} %)",
                              highlight=False)
            else:
                console.print(f"[red]{name}[/red]: {r.get('error') or 'outputs differ'} "
                              f"({r['path']})", highlight=False)
    raise typer.Exit(0 if all(r["ok"] for r in results.values()) else 1)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("export")(export_cmd)
