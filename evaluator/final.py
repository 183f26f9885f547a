"""Final training of a chosen model (``archlore train``) and deployment export (``archlore
export``).

Trust boundary: unlike ``evaluate`` (untrusted candidates, sandboxed workers that only ever
return numbers and predictions), final training runs **in this process**: it must hand back
the trained weights, and the sandboxed worker's channel carries no tensors. It is meant for a
model the user picked from a run's front (``models/cand_NNNN.py``, a standalone file they can
read) or their own file. The source must still pass the evaluator's static policy
(``policy.check_source``) -- a guard against a generated file doing I/O, not a sandbox; run
``archlore train`` only on code you would run with ``python``.

The loop is the proxy training's recipe (``train.py``: SGD + Nesterov, label smoothing, decay
split, linear one-cycle schedule over all steps, the same augmentation) for ``epochs`` epochs,
with a checkpoint (model, optimizer, schedule, RNG, curve) after every epoch: an interrupted
run resumes where it stopped and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from archlore.evaluator.cascade import build_model
from archlore.evaluator.data import get_spec, load_dataset
from archlore.evaluator.policy import check_source
from archlore.evaluator.records import Recipe
from archlore.evaluator.train import augment

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
MODEL_FILE = "model.py"
METRICS = "metrics.json"
CURVE_PNG = "learning_curve.png"


class FinalTrainingError(RuntimeError):
    """The model cannot be trained (policy, build, or a checkpoint that does not match)."""


@dataclass
class FinalResult:
    out_dir: str
    epochs: float
    steps: int
    seconds: float
    val_acc: float
    test_acc: float
    params: int
    curve: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, val_acc
    resumed_from_epoch: int = 0
    files: dict[str, str] = field(default_factory=dict)


def load_net(code: str, dataset: str, data_root: str | None = None) -> torch.nn.Module:
    """Check ``code`` against the static policy and build its ``Net`` for ``dataset``."""
    bad = check_source(code)
    if bad:
        raise FinalTrainingError("the model fails the static policy: "
                                 + "; ".join(str(v) for v in bad[:5]))
    spec = get_spec(dataset, data_root)
    return build_model(code, spec.num_classes, spec.in_channels)


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / max(1, len(x))


def train_final(code: str, out_dir: str | Path, *, dataset: str = "digits", epochs: int = 30,
                recipe: Recipe | None = None, seed: int = 0, data_root: str | None = None,
                device: str = "cpu", resume: bool = True, threads: int | None = None,
                steps_per_epoch: int | None = None,
                progress: Callable[[dict[str, Any]], None] | None = None) -> FinalResult:
    """Train ``code``'s Net on ``dataset`` for ``epochs`` full epochs with ``recipe`` (its
    ``epochs`` / ``max_steps`` are ignored), checkpointing into ``out_dir`` after every epoch.
    ``steps_per_epoch`` caps the steps of each epoch (smoke runs, tests). ``progress`` gets ``{"epoch", "epochs", "step", "steps", "loss", "val_acc"}``."""
    recipe = recipe or Recipe()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    spec = get_spec(dataset, data_root)
    splits = load_dataset(dataset, data_root)
    x = torch.from_numpy(splits.train_x).to(dev)
    y = torch.from_numpy(splits.train_y).to(dev)
    vx, vy = torch.from_numpy(splits.val_x).to(dev), torch.from_numpy(splits.val_y).to(dev)
    tx, ty = torch.from_numpy(splits.test_x).to(dev), torch.from_numpy(splits.test_y).to(dev)
    torch.manual_seed(seed)
    model = load_net(code, dataset, data_root).to(dev)
    n, bs = len(x), min(recipe.batch_size, len(x))
    steps_per_epoch = min(max(1, n // bs), steps_per_epoch or n)
    total = steps_per_epoch * epochs
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=recipe.lr, momentum=0.9, nesterov=True)
    warm = max(1, total // 5)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    gen = torch.Generator(device=dev).manual_seed(seed)
    curve: list[dict[str, float]] = []
    start_epoch = 0
    ident = {"code": code, "dataset": dataset, "epochs": epochs, "seed": seed,
             "steps_per_epoch": steps_per_epoch,
             "recipe": recipe.model_dump()}
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        if ck.get("ident") != ident:
            raise FinalTrainingError(f"{ckpt_path} belongs to another model/recipe/epochs; "
                                     "remove it or pass --no-resume")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        curve, start_epoch = ck["curve"], ck["epoch"]
    (out / MODEL_FILE).write_text(code)  # the standalone source beside its weights
    t0 = time.perf_counter()
    seconds = sum(c.get("seconds", 0.0) for c in curve)
    for epoch in range(start_epoch, epochs):
        model.train()
        perm = torch.randperm(n, device=dev, generator=gen)
        running, e0 = 0.0, time.perf_counter()
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            xb = augment(x[idx], spec.pad, spec.flip, gen)
            loss = F.cross_entropy(model(xb).float(), y[idx],
                                   label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
            if not math.isfinite(running):
                raise FinalTrainingError(f"training diverged (loss NaN/inf) in epoch {epoch + 1}")
            if progress is not None and (i % max(1, steps_per_epoch // 20) == 0
                                         or i == steps_per_epoch - 1):
                progress({"epoch": epoch + 1, "epochs": epochs, "step": epoch * steps_per_epoch
                          + i + 1, "steps": total, "loss": running / (i + 1)})
        val = _accuracy(model, vx, vy)
        curve.append({"epoch": epoch + 1, "loss": running / steps_per_epoch, "val_acc": val,
                      "seconds": time.perf_counter() - e0})
        torch.save({"ident": ident, "model": model.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "curve": curve, "epoch": epoch + 1},
                   ckpt_path.with_suffix(".tmp"))
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)  # atomic: a kill never leaves half
        if progress is not None:
            progress({"epoch": epoch + 1, "epochs": epochs, "step": (epoch + 1) * steps_per_epoch,
                      "steps": total, "loss": curve[-1]["loss"], "val_acc": val})
    seconds += time.perf_counter() - t0
    val, test = _accuracy(model, vx, vy), _accuracy(model, tx, ty)
    torch.save(model.state_dict(), out / WEIGHTS)
    files = {"weights": str(out / WEIGHTS), "model": str(out / MODEL_FILE),
             "checkpoint": str(ckpt_path), "metrics": str(out / METRICS)}
    png = plot_curve(curve, out / CURVE_PNG)
    if png is not None:
        files["curve"] = str(png)
    res = FinalResult(out_dir=str(out), epochs=epochs, steps=total, seconds=seconds,
                      val_acc=val, test_acc=test,
                      params=sum(p.numel() for p in model.parameters()), curve=curve,
                      resumed_from_epoch=start_epoch, files=files)
    (out / METRICS).write_text(json.dumps({**asdict(res), "dataset": dataset, "seed": seed,
                                           "recipe": recipe.model_dump()}, indent=1))
    return res


def plot_curve(curve: list[dict[str, float]], path: Path) -> Path | None:
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [c["epoch"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [c["loss"] for c in curve], color="#d1495b", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    ax2 = ax.twinx()
    ax2.plot(ep, [100 * c["val_acc"] for c in curve], color="#00798c", label="val acc")
    ax2.set_ylabel("val acc (%)")
    fig.legend(loc="upper center", ncol=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# -- export ----------------------------------------------------------------------------------
def load_trained(model_dir: str | Path, dataset: str, data_root: str | None = None
                 ) -> torch.nn.Module:
    """The Net of ``model_dir/model.py`` with ``model_dir/weights.pt`` loaded, eval mode."""
    d = Path(model_dir)
    model = load_net((d / MODEL_FILE).read_text(), dataset, data_root)
    model.load_state_dict(torch.load(d / WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


def export_model(model_dir: str | Path, dataset: str, *, out_dir: str | Path | None = None,
                 formats: tuple[str, ...] = ("onnx", "torchscript"), data_root: str | None = None,
                 atol: float = 1e-4) -> dict[str, dict[str, Any]]:
    """Write ``model.onnx`` (batch axis dynamic) and ``model.ts`` (TorchScript, traced) and
    verify each by running the written file (onnxruntime / ``torch.jit.load``) on real
    validation images against the PyTorch model: ``{format: {"path", "ok", "max_abs_diff",
    "agree" (argmax agreement), "error"}}``."""
    import warnings

    d = Path(model_dir)
    out = Path(out_dir) if out_dir else d
    out.mkdir(parents=True, exist_ok=True)
    model = load_trained(d, dataset, data_root)
    spec = get_spec(dataset, data_root)
    splits = load_dataset(dataset, data_root)
    x = torch.from_numpy(splits.val_x[:8]).float()
    with torch.no_grad():
        ref = model(x).numpy()
    example = x[:1]
    results: dict[str, dict[str, Any]] = {}

    def check(name: str, path: Path, got: np.ndarray) -> None:
        diff = float(np.max(np.abs(got - ref)))
        agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
        tol = atol * max(1.0, float(np.max(np.abs(ref))))
        results[name] = {"path": str(path), "ok": diff <= tol and agree == 1.0,
                         "max_abs_diff": diff, "agree": agree, "error": None}

    if "onnx" in formats:
        path = out / "model.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(path), input_names=["images"],
                                  output_names=["logits"], dynamo=False,
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            check("onnx", path, sess.run(None, {"images": x.numpy()})[0])
        except Exception as exc:  # noqa: BLE001 - reported, the other format may still work
            results["onnx"] = {"path": str(path), "ok": False, "error": f"{type(exc).__name__}: "
                               f"{exc}"[:500]}
    if "torchscript" in formats:
        path = out / "model.ts"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model, example)
                traced.save(str(path))
                loaded = torch.jit.load(str(path))
                with torch.no_grad():
                    got = loaded(x).numpy()
            check("torchscript", path, got)
        except Exception as exc:  # noqa: BLE001
            results["torchscript"] = {"path": str(path), "ok": False,
                                      "error": f"{type(exc).__name__}: {exc}"[:500]}
    meta = {"dataset": dataset, "input": [None, spec.in_channels, spec.image_size,
                                          spec.image_size], "results": results}
    (out / "export.json").write_text(json.dumps(meta, indent=1))
    return results


__all__ = ["FinalResult", "FinalTrainingError", "export_model", "load_net", "load_trained",
           "plot_curve", "train_final"]
