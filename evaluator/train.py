"""Proxy training: one short, deterministic loop, airbench/nanoGPT style.

Data lives as tensors on the device (no DataLoader workers); augmentation runs on the device;
SGD with Nesterov momentum, label smoothing and a linear one-cycle schedule; bf16 autocast and
channels_last on CUDA. Same seed, same device, same result.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from archlore.evaluator.cost import CostCounter
from torch import nn


@dataclass
class TrainBudget:
    """Stop at whichever comes first: ``epochs`` over the data, ``max_steps``, ``max_seconds``."""

    epochs: float = 3.0
    max_steps: int | None = None
    max_seconds: float | None = None
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    pad: int = 4  # random-crop padding, pixels
    flip: bool = True


@dataclass
class TrainResult:
    steps: int
    seconds: float  # wall clock of the loop, synchronised on CUDA
    images_per_second: float
    loss_curve: list[float] = field(default_factory=list)  # mean loss per logged interval
    diverged: bool = False  # a logged loss was NaN/inf
    trained_params: int = 0  # parameter elements the optimizer updated
    forward_macs: list[int] = field(default_factory=list)  # per image, at counted steps
    forward_other: list[int] = field(default_factory=list)


def augment(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and optional horizontal flip; x is (N, C, H, W)."""
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device, generator=gen)
        rows = (torch.arange(h, device=x.device) + dy)[:, None, :, None]  # (N, 1, H, 1)
        cols = (torch.arange(w, device=x.device) + dx)[:, None, None, :]  # (N, 1, 1, W)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: TrainBudget,
          seed: int = 0, count_step: Callable[[int], bool] | None = None) -> TrainResult:
    """Train ``model`` in place on images ``x`` (N, C, H, W) and labels ``y`` (N,).

    ``x``/``y`` must already be on the model's device. Loss is logged ~50 times per run.
    The forward of every step where ``count_step(step)`` is true runs under a CostCounter.
    """
    device = x.device
    cuda = device.type == "cuda"
    n, bs = len(x), min(budget.batch_size, len(x))
    steps_per_epoch = max(1, n // bs)
    total = max(1, math.ceil(budget.epochs * steps_per_epoch))
    if budget.max_steps is not None:
        total = min(total, budget.max_steps)
    gen = torch.Generator(device=device).manual_seed(seed)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    trained_params = sum(p.numel() for p in decay + no_decay)
    counted_macs: list[int] = []
    counted_other: list[int] = []
    opt = torch.optim.SGD([{"params": decay, "weight_decay": budget.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=budget.lr, momentum=0.9, nesterov=True)
    warm = max(1, total // 5)  # one-cycle: linear warm-up over 20% of the steps, linear decay

    def one_cycle(s: int) -> float:
        return (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    log_every = max(1, total // 50)
    curve: list[float] = []
    running = torch.zeros((), device=device)
    model.train()
    start = time.perf_counter()
    # the deadline counts from the start the result reports (it was taken before, so under
    # load a stopped run could report less than its budget)
    deadline = start + (budget.max_seconds or math.inf)
    step = 0
    while step < total:
        if step % steps_per_epoch == 0:
            perm = torch.randperm(n, device=device, generator=gen)
        idx = perm[(step % steps_per_epoch) * bs:(step % steps_per_epoch + 1) * bs]
        xb = augment(x[idx], budget.pad, budget.flip, gen)
        if cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        counter = CostCounter() if count_step is not None and count_step(step) else None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            with counter if counter is not None else contextlib.nullcontext():
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), y[idx],
                                   label_smoothing=budget.label_smoothing)
        if counter is not None:
            counted_macs.append(int(round(counter.macs / max(1, len(xb)))))
            counted_other.append(int(round(counter.other / max(1, len(xb)))))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.detach()
        step += 1
        over_time = time.perf_counter() > deadline
        if step % log_every == 0 or step == total or over_time:
            mean = (running / (step - (len(curve) * log_every))).item()  # one sync per log
            running.zero_()
            curve.append(mean)
            if over_time or not math.isfinite(mean):
                break
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    diverged = any(not math.isfinite(v) for v in curve)
    return TrainResult(step, seconds, step * bs / max(seconds, 1e-9), curve, diverged,
                       trained_params, counted_macs, counted_other)
