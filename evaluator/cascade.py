"""The evaluation cascade as it runs inside a (contained) worker process.

Stages, each timed and recorded: data -> build -> shape -> cost -> train -> eval. The policy
stage runs in the parent (evaluator.sandbox) before any worker starts. Every stage that runs
candidate code catches everything, so a broken candidate becomes an Evaluation, not a crash.
"""

from __future__ import annotations

import math
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

import torch
from archlore.evaluator.data import Splits, get_spec, load_dataset
from archlore.evaluator.records import EvalConfig, Evaluation, Stage, StageTiming
from archlore.evaluator.train import TrainBudget, accuracy, train
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

Emit = Callable[[dict[str, Any]], None]
CANDIDATE_FILENAME = "candidate.py"


class StageFailure(Exception):
    """A stage ended the cascade: carries the final status and a specific reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def describe_exception(exc: BaseException) -> str:
    """'Type: message (candidate.py line N)' — the line where the candidate's code failed."""
    line = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == CANDIDATE_FILENAME:
            line = f" (candidate.py line {frame.lineno})"
            break
    if isinstance(exc, SystemExit):
        return f"candidate called sys.exit({exc.code!r}){line}"
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{line}"


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, input_shape: tuple[int, int, int], batch: int = 2) -> int:
    """MACs per image for one forward pass in eval mode; input_shape is (C, H, W).

    torch's FlopCounterMode counts 2 FLOPs per multiply-accumulate, so MACs = FLOPs / 2.
    Only ops with a registered FLOP formula count (conv, matmul, attention...); elementwise
    ops and normalisation are free, as in the usual "FLOPs" tables of NAS papers.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(batch, *input_shape, device=device)
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(round(counter.get_total_flops() / 2 / batch))


def build_model(code: str, num_classes: int, in_channels: int) -> nn.Module:
    """Execute the candidate source in a fresh module and instantiate ``Net``."""
    module = types.ModuleType("candidate")
    module.__file__ = CANDIDATE_FILENAME
    exec(compile(code, CANDIDATE_FILENAME, "exec"), module.__dict__)  # noqa: S102 - contained
    net_cls = module.__dict__.get("Net")
    if not (isinstance(net_cls, type) and issubclass(net_cls, nn.Module)):
        raise StageFailure("rejected", "the source defines no `class Net(nn.Module)`")
    model = net_cls(num_classes=num_classes, in_channels=in_channels)
    if not isinstance(model, nn.Module):
        raise StageFailure("failed", "Net(...) did not return an nn.Module")
    return model


def check_shape(model: nn.Module, input_shape: tuple[int, int, int], num_classes: int,
                device: torch.device) -> None:
    """One forward on a dummy batch (2, C, H, W): logits must be finite (2, num_classes)."""
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *input_shape, device=device))
    if not isinstance(out, torch.Tensor):
        raise StageFailure("failed", f"forward returned {type(out).__name__}, expected a Tensor")
    if tuple(out.shape) != (2, num_classes):
        raise StageFailure("failed", f"forward returned shape {tuple(out.shape)} for input "
                                     f"(2, {', '.join(map(str, input_shape))}); "
                                     f"expected (2, {num_classes})")
    if not torch.isfinite(out.float()).all():
        raise StageFailure("failed", "forward returned NaN/inf logits on a dummy batch")


def run_cascade(code: str, cfg: EvalConfig, device: torch.device, emit: Emit) -> Evaluation:
    """Run data -> build -> shape -> cost -> train -> eval. ``emit`` receives progress dicts
    (``{"stage": ...}``, partial results) so a parent can report where a killed worker was."""
    spec = get_spec(cfg.dataset)
    shape = (spec.in_channels, spec.image_size, spec.image_size)
    result: dict[str, Any] = {"seed": cfg.seed, "dataset": cfg.dataset}
    timings: list[StageTiming] = []

    def stage(name: Stage, fn: Callable[[], Any]) -> Any:
        emit({"stage": name})
        start = time.perf_counter()
        try:
            out = fn()
        except StageFailure:
            timings.append(StageTiming(stage=name, seconds=time.perf_counter() - start, ok=False))
            raise
        except BaseException as exc:  # noqa: BLE001 - candidate code may raise anything
            timings.append(StageTiming(stage=name, seconds=time.perf_counter() - start, ok=False))
            raise StageFailure("failed", describe_exception(exc)) from exc
        timings.append(StageTiming(stage=name, seconds=time.perf_counter() - start, ok=True))
        return out

    current: list[Stage] = ["data"]

    def run(name: Stage, fn: Callable[[], Any]) -> Any:
        current[0] = name
        return stage(name, fn)

    try:
        data: Splits = run("data", lambda: load_dataset(cfg.dataset, cfg.data_root))
        tensors = [torch.from_numpy(a).to(device) for a in (
            data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y)]
        torch.manual_seed(cfg.seed)
        model = run("build", lambda: build_model(code, data.num_classes, spec.in_channels)
                    .to(device))
        run("shape", lambda: check_shape(model, shape, data.num_classes, device))

        def cost() -> None:
            result["params"] = count_params(model)
            result["macs"] = count_macs(model, shape)
            emit({"params": result["params"], "macs": result["macs"]})
            if result["params"] == 0:
                raise StageFailure("failed", "Net has no trainable parameters")
            if cfg.max_params is not None and result["params"] > cfg.max_params:
                raise StageFailure("rejected", f"{result['params']:,} parameters exceed the cap "
                                               f"of {cfg.max_params:,} (not trained)")
            if cfg.max_mmacs is not None and result["macs"] > cfg.max_mmacs * 1e6:
                raise StageFailure("rejected", f"{result['macs'] / 1e6:.2f} MMACs per image "
                                               f"exceed the cap of {cfg.max_mmacs:g} MMACs "
                                               f"(not trained)")

        run("cost", cost)
        budget = TrainBudget(epochs=cfg.epochs, max_steps=cfg.max_steps,
                             max_seconds=cfg.max_train_seconds, batch_size=cfg.batch_size,
                             lr=cfg.lr, weight_decay=cfg.weight_decay,
                             label_smoothing=cfg.label_smoothing, pad=spec.pad, flip=spec.flip)
        torch.manual_seed(cfg.seed)
        trained = run("train", lambda: train(model, tensors[0], tensors[1], budget, cfg.seed))
        result.update(train_seconds=trained.seconds, throughput=trained.images_per_second,
                      loss_curve=trained.loss_curve)
        emit({"train_seconds": trained.seconds, "throughput": trained.images_per_second})
        if trained.diverged:
            raise StageFailure("failed", f"training loss became NaN/inf at step {trained.steps} "
                                         f"(last logged loss {trained.loss_curve[-1]})")

        def evaluate() -> None:
            result["val_acc"] = accuracy(model, tensors[2], tensors[3])
            result["test_acc"] = accuracy(model, tensors[4], tensors[5])
            for key in ("val_acc", "test_acc"):
                if not math.isfinite(result[key]):
                    raise StageFailure("failed", f"{key} is not finite")

        run("eval", evaluate)
        return Evaluation(status="ok", stage="eval", timings=timings, **result)
    except StageFailure as failure:
        return Evaluation(status=failure.status, stage=current[0], reason=failure.reason,
                          timings=timings, **result)
