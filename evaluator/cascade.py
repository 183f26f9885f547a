"""The evaluation cascade as it runs inside a (contained) worker process.

Stages, each timed and recorded: data -> build -> shape -> cost -> train -> eval. The policy
stage runs in the parent (evaluator.sandbox) before any worker starts. Every stage that runs
candidate code catches everything, so a broken candidate becomes an Evaluation, not a crash.

The worker never holds validation or test labels and never computes an accuracy: the eval
stage sends the predicted class of every validation and test image to the parent, which
scores them (evaluator.sandbox). Costs are counted on real training images at the training
batch size, again at batch 1, during sampled training steps and on the first evaluation
batch; a candidate whose cost depends on when it is counted is rejected (evaluator.cost).
"""

from __future__ import annotations

import math
import random
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from archlore.evaluator import cost as costs
from archlore.evaluator.channel import KIND_TEST, KIND_VAL, FrameWriter
from archlore.evaluator.data import get_spec
from archlore.evaluator.records import EvalConfig, Evaluation, Stage, StageTiming
from archlore.evaluator.train import TrainBudget, train
from torch import nn

CANDIDATE_FILENAME = "candidate.py"
EVAL_BATCH = 1024
# Eval-mode MACs per image measured at different batches/data may differ by this fraction.
CONSISTENCY_SLACK = 0.10


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
    """Number of parameters, trainable or frozen (shared tensors counted once): a frozen
    parameter is still model size, and counting all of them means toggling ``requires_grad``
    after the count hides nothing."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, int, int], batch: int = 2) -> int:
    """MACs per image for one forward on zeros in eval mode; input_shape is (C, H, W).

    Ops with a registered FLOP formula (conv, matmul, attention...) count, FLOPs / 2, as in
    the usual NAS tables; the cascade also counts every other op (evaluator.cost).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    return costs.count_cost(model, torch.zeros(batch, *input_shape, device=device)).macs


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
                device: torch.device, x: torch.Tensor | None = None) -> None:
    """One forward on ``x`` (default: a random batch of 2): finite (N, num_classes) logits."""
    model.eval()
    if x is None:
        x = torch.randn(2, *input_shape, device=device)
    with torch.no_grad():
        out = model(x)
    if not isinstance(out, torch.Tensor):
        raise StageFailure("failed", f"forward returned {type(out).__name__}, expected a Tensor")
    if tuple(out.shape) != (len(x), num_classes):
        raise StageFailure("failed", f"forward returned shape {tuple(out.shape)} for input "
                                     f"({len(x)}, {', '.join(map(str, input_shape))}); "
                                     f"expected ({len(x)}, {num_classes})")
    if not torch.isfinite(out.float()).all():
        raise StageFailure("failed", f"forward returned NaN/inf logits on a batch of {len(x)}")


def _over_cap(cfg: EvalConfig, macs: int, when: str) -> None:
    if cfg.max_mmacs is not None and macs > cfg.max_mmacs * 1e6:
        raise StageFailure("rejected", f"{macs / 1e6:.2f} MMACs per image {when}exceed the cap "
                                       f"of {cfg.max_mmacs:g} MMACs"
                                       + ("" if when else " (not trained)"))


def _consistent(counts: dict[str, int]) -> None:
    """Eval-mode MACs per image must not depend on batch size or data (hidden branches)."""
    low, high = min(counts.values()), max(counts.values())
    if high > low * (1 + CONSISTENCY_SLACK) + 1000:
        detail = ", ".join(f"{v:,} {k}" for k, v in counts.items())
        raise StageFailure("rejected", f"inconsistent cost: MACs per image depend on when they "
                                       f"are counted ({detail})")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, counted: dict[str, int]) -> np.ndarray:
    """Predicted class per image (int32), eval mode; the first batch's cost is counted."""
    model.eval()
    cuda = x.device.type == "cuda"
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i:i + EVAL_BATCH]
        if cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        counter = costs.CostCounter() if i == 0 and "eval" not in counted else None
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cuda):
            if counter is not None:
                with counter:
                    logits = model(xb)
                counted["eval"] = int(round(counter.macs / max(1, len(xb))))
            else:
                logits = model(xb)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape[:1]) != (len(xb),):
            raise StageFailure("failed", "forward returned no (N, num_classes) tensor in eval")
        logits = logits.detach().float().cpu()
        if not bool(torch.isfinite(logits).all()):
            raise StageFailure("failed", "forward returned NaN/inf logits on evaluation images")
        out.append(torch.argmax(logits, dim=1).numpy().astype(np.int32))
    return np.concatenate(out) if out else np.zeros(0, np.int32)


def _facts(name: str) -> dict[str, Any]:
    spec = get_spec(name)
    return {"in_channels": spec.in_channels, "num_classes": spec.num_classes,
            "image_size": spec.image_size, "pad": spec.pad, "flip": spec.flip}


def run_cascade(code: str, cfg: EvalConfig, device: torch.device,
                arrays: dict[str, np.ndarray], writer: FrameWriter,
                nonce: int = 0, facts: dict[str, Any] | None = None) -> Evaluation:
    """Run data -> build -> shape -> cost -> train -> eval on ``arrays`` (train_x, train_y,
    val_x, test_x). Progress goes to ``writer`` as events; predictions as frames. ``facts``
    (in_channels, num_classes, image_size, pad, flip) come from the parent, which resolved
    the dataset: a worker cannot read a user dataset's files to look them up."""
    emit = writer.event
    spec = types.SimpleNamespace(**(facts or _facts(cfg.dataset)))
    shape = (spec.in_channels, spec.image_size, spec.image_size)
    result: dict[str, Any] = {"seed": cfg.seed, "dataset": cfg.dataset}
    metrics: dict[str, float] = {}
    timings: list[StageTiming] = []
    current: list[Stage] = ["data"]

    def run(name: Stage, fn: Callable[[], Any]) -> Any:
        current[0] = name
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

    try:
        train_x, train_y, val_x, test_x = run("data", lambda: [
            torch.from_numpy(arrays[k]).to(device)
            for k in ("train_x", "train_y", "val_x", "test_x")])
        bs = min(cfg.batch_size, len(train_x))
        real = train_x[:bs]  # real images at the training batch size: what training sees
        torch.manual_seed(cfg.seed)
        model = run("build", lambda: build_model(code, spec.num_classes, spec.in_channels)
                    .to(device))
        run("shape", lambda: check_shape(model, shape, spec.num_classes, device, real))
        counted: dict[str, int] = {}

        def cost() -> None:
            result["params"] = count_params(model)
            model.eval()
            at_batch = costs.count_cost(model, real)
            counted[f"at batch {bs}"] = at_batch.macs
            result["macs"] = at_batch.macs
            metrics["other_ops"] = float(at_batch.other)
            emit({"params": result["params"], "macs": result["macs"]})
            if result["params"] == 0:
                raise StageFailure("failed", "Net has no parameters")
            if cfg.max_params is not None and result["params"] > cfg.max_params:
                raise StageFailure("rejected", f"{result['params']:,} parameters exceed the cap "
                                               f"of {cfg.max_params:,} (not trained)")
            _over_cap(cfg, at_batch.macs, "")
            counted["at batch 1"] = costs.count_cost(model, real[:1]).macs
            _consistent(counted)
            hidden = costs.hidden_work_reason(at_batch, math.prod(shape))
            if hidden:
                raise StageFailure("rejected", hidden + " (not trained)")
            if cfg.measure_latency:
                single, per_image = costs.measure_latency(model, real[:1], real)
                metrics["latency_ms"] = single * 1e3
                metrics["latency_batch_ms"] = per_image * 1e3
                rates = costs.reference_rates(device)
                expected = costs.expected_seconds(at_batch, bs, rates)
                ratio = per_image * bs / max(expected, 1e-9)
                metrics["latency_ratio"] = ratio
                if ratio > costs.TIME_RATIO and per_image * bs > costs.TIME_FLOOR_S:
                    raise StageFailure("rejected", (
                        f"uncounted compute: a forward of {bs} images takes "
                        f"{per_image * bs * 1e3:.1f} ms, {ratio:.0f}x what its counted "
                        f"{at_batch.macs:,} MACs and {at_batch.other:,} other ops per image "
                        f"predict (allowed {costs.TIME_RATIO:g}x; not trained)"))
            emit({"metrics": metrics})

        run("cost", cost)
        budget = TrainBudget(epochs=cfg.epochs, max_steps=cfg.max_steps,
                             max_seconds=cfg.max_train_seconds, batch_size=cfg.batch_size,
                             lr=cfg.lr, weight_decay=cfg.weight_decay,
                             label_smoothing=cfg.label_smoothing, pad=spec.pad, flip=spec.flip)
        # Training forwards counted at steps the candidate cannot predict (the nonce comes
        # from the parent) plus the first: expensive-only-sometimes nets are caught there.
        probe_rng = random.Random(nonce)
        torch.manual_seed(cfg.seed)
        trained = run("train", lambda: train(model, train_x, train_y, budget, cfg.seed,
                                             count_step=lambda s: s == 0 or
                                             probe_rng.random() < 1 / 8))
        result.update(train_seconds=trained.seconds, throughput=trained.images_per_second,
                      loss_curve=trained.loss_curve)
        emit({"train_seconds": trained.seconds, "throughput": trained.images_per_second})
        if trained.diverged:
            raise StageFailure("failed", f"training loss became NaN/inf at step {trained.steps} "
                                         f"(last logged loss {trained.loss_curve[-1]})")

        def evaluate() -> None:
            after = count_params(model)
            if after != result["params"] or trained.trained_params > after:
                raise StageFailure("rejected", (
                    f"inconsistent cost: {result['params']:,} parameters counted before "
                    f"training, {after:,} after, {trained.trained_params:,} trained"))
            if trained.forward_macs:
                metrics["train_macs"] = float(max(trained.forward_macs))
                metrics["train_other_ops"] = float(max(trained.forward_other))
                _over_cap(cfg, max(trained.forward_macs), "in training ")
                hidden = costs.hidden_work_reason(
                    costs.Cost(max(trained.forward_macs), max(trained.forward_other), 0),
                    math.prod(shape))
                if hidden:
                    raise StageFailure("rejected", hidden + " (in training)")
            writer.predictions(KIND_VAL, predict(model, val_x, counted))
            writer.predictions(KIND_TEST, predict(model, test_x, counted))
            result["macs"] = max(counted.values())
            _over_cap(cfg, result["macs"], "in evaluation ")
            _consistent(counted)

        run("eval", evaluate)
        return Evaluation(status="ok", stage="eval", timings=timings, metrics=metrics, **result)
    except StageFailure as failure:
        return Evaluation(status=failure.status, stage=current[0], reason=failure.reason,
                          timings=timings, metrics=metrics, **result)
