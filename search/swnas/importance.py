"""Perturbation signals measured on the supernet (validation data, no gradients).

* **Node importance** ``I_n``: how much the supernet's validation loss rises when node ``n``
  is masked (its value zeroed in every cell), relative to masking the cell output (node 3)::

      D_n = L(node n masked) - L,     I_n = clip(D_n / max(D_1, D_2, D_3), 0, 1),  n = 1, 2
      I_0 = I_3 = 1   (the cell input and output are always part of the cell)

  A node whose inputs are all masked (or whose value does not matter) gets ``I_n = 0``.
* **Op importance** ``D(e, o)``: the loss rise when op ``o`` is removed from edge ``e`` (its
  mixing weight set to 0, the others not renormalised) in every cell -- DARTS-PT's
  perturbation (Wang et al., ICLR 2021), one shot, without its fine-tuning between edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from archlore.search.spaces.nb201 import EDGES, OPS

_CHUNK = 256  # fixed evaluation batches: batch-statistics BN sees the same batches every time


@torch.no_grad()
def loss(net: torch.nn.Module, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
         node_scale: torch.Tensor | None = None) -> float:
    total = 0.0
    for i in range(0, len(x), _CHUNK):
        out = net(x[i:i + _CHUNK], w, node_scale)
        total += float(F.cross_entropy(out, y[i:i + _CHUNK], reduction="sum"))
    return total / max(1, len(x))


@torch.no_grad()
def accuracy(net: torch.nn.Module, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    hits = 0
    for i in range(0, len(x), _CHUNK):
        hits += int((net(x[i:i + _CHUNK], w).argmax(1) == y[i:i + _CHUNK]).sum())
    return hits / max(1, len(x))


@torch.no_grad()
def node_importance(net: torch.nn.Module, w: torch.Tensor, x: torch.Tensor,
                    y: torch.Tensor) -> list[float]:
    """``[I_0, I_1, I_2, I_3]`` (see the module docstring)."""
    base = loss(net, w, x, y)
    drops = []
    for n in (1, 2, 3):
        scale = torch.ones(4)
        scale[n] = 0.0
        drops.append(loss(net, w, x, y, scale) - base)
    denom = max(max(drops), 1e-8)
    return [1.0] + [min(1.0, max(0.0, d / denom)) for d in drops[:2]] + [1.0]


@torch.no_grad()
def op_importance(net: torch.nn.Module, w: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> list[list[float]]:
    """6 x 5 table of ``D(e, o)``; 0 for ``none`` and for masked ops (weight 0)."""
    base = loss(net, w, x, y)
    out = [[0.0] * len(OPS) for _ in EDGES]
    for e in range(len(EDGES)):
        for o, name in enumerate(OPS):
            if name == "none" or float(w[e, o]) == 0.0:
                continue
            w2 = w.clone()
            w2[e, o] = 0.0
            out[e][o] = loss(net, w2, x, y) - base
    return out
