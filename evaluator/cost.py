"""Costs of a candidate that it cannot hide by choosing which ops it uses or when it is counted.

- ``CostCounter`` (a ``TorchDispatchMode``) sees every aten op a forward runs: ops with a
  FLOP formula in torch's ``flop_registry`` (conv, matmul, attention...) count as MACs, as in
  NAS papers' tables; every other compute-bearing op counts its elements as "other ops"
  (elementwise, reductions, ``unfold`` x mul + sum, FFT at n log n, sort...). A net whose
  other ops dwarf its MACs is computing outside what ``macs`` reports and is rejected.
- ``measure_latency``: median per-image forward time at batch 1 and at the training batch,
  after warm-up, bounded in time; ``reference_rates`` times a matmul, an elementwise op and
  an empty op on the same device so a forward far slower than its counted work (compute torch
  does not see) can be flagged.

This runs in the worker, i.e. in the candidate's process: code that bypasses the static
policy could tamper with it (see the README); the parent range-checks what comes back.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

# "Other ops" may be this many times the MACs, plus this many per input element, before a
# net counts as hiding compute. Ordinary CNNs measure 0.3-3x (BN, activations, pooling).
OTHER_OPS_RATIO = 8.0
OTHER_OPS_PER_INPUT = 64.0
# A forward may take this many times what its counted work predicts (and at least this many
# seconds per batch) before it counts as compute the counter does not see.
TIME_RATIO = 50.0
TIME_FLOOR_S = 0.02

_ATEN = torch.ops.aten
# No arithmetic: allocation, metadata, conversions to Python scalars.
_FREE = {_ATEN.empty, _ATEN.empty_like, _ATEN.empty_strided, _ATEN.zeros, _ATEN.ones,
         _ATEN.full, _ATEN.zeros_like, _ATEN.ones_like, _ATEN.full_like, _ATEN.scalar_tensor,
         _ATEN.lift_fresh, _ATEN.detach, _ATEN._local_scalar_dense, _ATEN.sym_size,
         _ATEN.sym_stride, _ATEN.sym_numel, _ATEN.sym_storage_offset, _ATEN.is_same_size,
         _ATEN.alias, _ATEN.arange, _ATEN.randn, _ATEN.rand, _ATEN.randint}
_NLOGN = ("_fft", "fft_", "sort", "topk", "kthvalue", "median", "argsort", "unique")
# Bound at import, before any candidate runs: the C type's method cannot be monkeypatched
# (torch.Tensor.numel can), so a candidate cannot make its tensors look empty to the count.
_TENSOR_NUMEL = torch._C.TensorBase.numel


def _numel(tree: object) -> int:
    if isinstance(tree, torch.Tensor):
        return _TENSOR_NUMEL(tree)
    if isinstance(tree, (list, tuple)):
        return sum(_numel(t) for t in tree)
    return 0


def _largest(tree: object) -> int:
    if isinstance(tree, torch.Tensor):
        return _TENSOR_NUMEL(tree)
    if isinstance(tree, (list, tuple)):
        return max((_largest(t) for t in tree), default=0)
    return 0


class CostCounter(TorchDispatchMode):
    """Counts MACs (registered FLOP formulas / 2), other ops (elements) and op calls."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.other = 0
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in flop_registry:
            self.macs += int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2
            self.calls += 1
        elif packet not in _FREE and not getattr(func, "is_view", False):
            work = max(_largest(args) + _largest(list(kwargs.values())), _numel(out))
            if any(key in packet.__name__ for key in _NLOGN):
                work = int(work * max(1.0, math.log2(max(2, work))))
            self.other += work
            self.calls += 1
        return out


@dataclass
class Cost:
    macs: int  # per image
    other: int  # per image
    calls: int  # op calls per forward


def count_cost(model: nn.Module, x: torch.Tensor) -> Cost:
    """Cost per image of one no-grad forward of ``model`` on the batch ``x`` (mode as is)."""
    counter = CostCounter()
    with torch.no_grad(), counter:
        model(x)
    n = max(1, len(x))
    return Cost(int(round(counter.macs / n)), int(round(counter.other / n)), counter.calls)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, device: torch.device, runs: int, budget_s: float) -> float:
    """Median wall time of ``fn`` after one warm-up run; stops early past ``budget_s``."""
    fn()
    _sync(device)
    times: list[float] = []
    spent_until = time.perf_counter() + budget_s
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > spent_until:
            break
    return statistics.median(times)


@torch.no_grad()
def measure_latency(model: nn.Module, x1: torch.Tensor, xb: torch.Tensor,
                    runs: int = 5, budget_s: float = 2.0) -> tuple[float, float]:
    """(seconds per image at batch 1, seconds per image at batch len(xb)), eval mode."""
    model.eval()
    device = xb.device
    single = _median_time(lambda: model(x1), device, runs, budget_s / 2)
    batch = _median_time(lambda: model(xb), device, runs, budget_s / 2)
    return single, batch / max(1, len(xb))


@dataclass
class Rates:
    macs_per_s: float
    elements_per_s: float
    call_s: float  # seconds per (tiny) op call: the Python + dispatcher overhead


@torch.no_grad()
def reference_rates(device: torch.device) -> Rates:
    """Trusted reference work on the same device, timed like the candidate's forward."""
    a = torch.randn(256, 256, device=device)
    b = torch.randn(1 << 20, device=device)
    tiny = torch.ones(1, device=device)
    mm = _median_time(lambda: a @ a, device, 5, 0.5)
    elt = _median_time(lambda: b * b, device, 5, 0.5)

    def calls() -> None:
        for _ in range(50):
            tiny + tiny

    call = _median_time(calls, device, 3, 0.5) / 50
    return Rates(256 ** 3 / max(mm, 1e-9), (1 << 20) / max(elt, 1e-9), call)


def expected_seconds(cost: Cost, batch: int, rates: Rates) -> float:
    """What a forward of ``batch`` images with ``cost`` should take at the reference rates."""
    return (batch * (cost.macs / rates.macs_per_s + cost.other / rates.elements_per_s)
            + cost.calls * rates.call_s)


def hidden_work_reason(cost: Cost, input_numel: int) -> str:
    """A reason when the uncounted ops dwarf the counted MACs, else ''."""
    allowed = OTHER_OPS_RATIO * cost.macs + OTHER_OPS_PER_INPUT * input_numel
    if cost.other > allowed:
        return (f"uncounted compute: {cost.other:,} elementwise/reduction/transform ops per "
                f"image against {cost.macs:,} counted MACs (allowed: {OTHER_OPS_RATIO:g}x the "
                f"MACs + {OTHER_OPS_PER_INPUT:g} per input element); express the compute as "
                f"convolutions/matmuls so it is counted")
    return ""
