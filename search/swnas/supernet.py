"""The NAS-Bench-201 supernet: mixed ops on the cell's 6 edges x 5 ops, stacked in NB201's
macro skeleton.

Skeleton (Dong & Yang, 2020): stem 3x3 conv (``C``) + BN; three stages of ``N`` search cells
at ``C`` / ``2C`` / ``4C`` channels joined by residual reduction blocks (stride-2 basic block,
shortcut = 2x2 avg-pool + 1x1 conv); BN-ReLU; global average pool; linear. ``C=16, N=5`` is
NAS-Bench-201's size; on CPU use e.g. ``C=8, N=1``. Every cell shares one architecture
``alpha`` (6 x 5), as in NB201's DARTS. Edge order and op names are those of
:mod:`archlore.search.spaces.nb201`.

Search-cell BN is ``affine=False``; every BN uses batch statistics (``track_running_stats=
False``), so training, validation and perturbation passes normalise alike (no running state).

``forward(x, weights, node_scale)`` takes the mixing weights explicitly (the caller softmaxes
``alpha`` and applies masks), so the same module serves training, op removal (a weight set to
0) and node masking (``node_scale[n] = 0`` zeroes node ``n`` in every cell).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from archlore.search.spaces.nb201 import EDGES, OPS

NUM_NODES = 4


class ReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, affine: bool = False):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def make_op(name: str, c: int) -> nn.Module | None:
    """A search op; None for ``none`` (contributes zero, never computed)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown op {name!r}")


class MixedOp(nn.Module):
    """``sum_o w_o * op_o(x)``; ops whose weight is exactly 0 (masked or removed) are skipped:
    exact, also for alpha's gradient (softmax gives a zero-probability op zero gradient)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList([make_op(o, c) or nn.Identity() for o in OPS])
        self.none_index = OPS.index("none")

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        for k, op in enumerate(self.ops):
            if k == self.none_index:
                continue  # zero op: w * 0 (its gradient w.r.t. alpha flows via the softmax)
            if float(w[k].detach()) != 0.0:
                out = out + w[k] * op(x)
        return out


class SearchCell(nn.Module):
    """4-node DAG; node i = sum over edges (i<-j) of MixedOp(node j)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList([MixedOp(c) for _ in EDGES])

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                node_scale: torch.Tensor | None = None) -> torch.Tensor:
        nodes = [x]
        for target in range(1, NUM_NODES):
            total = torch.zeros_like(x)
            for e, (i, j) in enumerate(EDGES):
                if i == target:
                    total = total + self.edges[e](nodes[j], weights[e])
            if node_scale is not None:
                total = total * node_scale[target]
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """NB201's stride-2 basic block between stages."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = ReLUConvBN(c_in, c_out, 3, stride=2, affine=True)
        self.b = ReLUConvBN(c_out, c_out, 3, stride=1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class ArchParams:
    """The alpha-vs-weights split both supernets share: ``alpha`` (rows x ops) is its own
    parameter, kept apart from the network weights for the alternating updates."""

    alpha: nn.Parameter

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alpha"]  # type: ignore[attr-defined]

    def mixing_weights(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(alpha) per row; masked ops (``mask`` False) get weight exactly 0."""
        a = self.alpha
        if mask is not None:
            a = a.masked_fill(~mask, float("-inf"))
        return F.softmax(a, dim=-1)


class Supernet(ArchParams, nn.Module):
    """NB201 supernet with ``cells`` search cells per stage and ``channels`` stem width.

    ``alpha`` (6 x 5) is a parameter of its own (:meth:`arch_parameters`), kept apart from the
    network weights (:meth:`weight_parameters`) for the alternating updates.
    """

    def __init__(self, channels: int = 16, cells: int = 5, num_classes: int = 10,
                 in_channels: int = 3) -> None:
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c, track_running_stats=False))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(SearchCell(c) for _ in range(cells))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c, track_running_stats=False), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                node_scale: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mixing_weights() if weights is None else weights
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h, w, node_scale) if isinstance(layer, SearchCell) else layer(h)
        h = self.head(h)
        return self.classifier(h.mean(dim=(2, 3)))
