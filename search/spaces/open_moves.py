"""Named structural moves on an ArchSpec: the vocabulary of Pareto-aware and refine mutations.

A move is ``move(spec, constraints, rng) -> ArchSpec | None`` (None: does not apply, or changes
nothing). Shrink moves cut MACs (or params), grow moves add capacity. With an ``rng`` a move picks
its target stage (and attention type) at random among the eligible ones, so repeated moves from
one parent explore different neighbours; without one it picks deterministically.
``INVERSE_MOVE`` pairs each move with the one that undoes it (used by refine feedback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from archlore.knowledge.schema import ArchEdit
from archlore.search.protocol import Constraints
from archlore.search.spaces.open_spec import ArchSpec, Stage, apply_edit

Rng = np.random.Generator | None
Move = Callable[[ArchSpec, Constraints, Rng], "ArchSpec | None"]
_EXPANDABLE = ("bottleneck", "mbconv", "fused", "convnext", "dense", "inception")


def _edit(spec: ArchSpec | None, op: str, path: str, value: Any) -> ArchSpec | None:
    if spec is None:
        return None
    try:
        new = apply_edit(spec, ArchEdit(op=op, path=path, value=value))
    except ValueError:
        return None
    return None if new.key() == spec.key() else new


def final_size(spec: ArchSpec, c: Constraints) -> float:
    """Side of the last stage's feature map, in pixels."""
    size = c.image_size * spec.resolution / spec.stem.stride
    return size / 2 ** sum(s.stride == 2 for s in spec.stages)


def _pick(spec: ArchSpec, ok: Callable[[Stage], bool], key: Callable[[Stage], float],
          rng: Rng) -> int | None:
    """An eligible stage index: random with rng, else the one with the largest key (last wins)."""
    idx = [i for i, s in enumerate(spec.stages) if ok(s)]
    if not idx:
        return None
    if rng is not None:
        return idx[int(rng.integers(len(idx)))]
    return max(idx, key=lambda i: (key(spec.stages[i]), i))


def _scale_all(spec: ArchSpec, factor: float) -> ArchSpec | None:
    new = _edit(spec, "scale", "stages[*].channels", factor)
    return (_edit(new, "scale", "stem.channels", factor) or new) if new else None


def narrower(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    return _scale_all(spec, 0.75)


def wider(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    return _scale_all(spec, 1.25)


def narrower_stage(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.channels > 4, lambda s: s.channels, rng)
    return None if i is None else _edit(spec, "scale", f"stages[{i}].channels", 0.75)


def wider_stage(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.channels < 1024, lambda s: -s.channels, rng)
    return None if i is None else _edit(spec, "scale", f"stages[{i}].channels", 1.5)


def shallower(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.depth > 1, lambda s: s.depth, rng)
    return None if i is None else _edit(spec, "add", f"stages[{i}].depth", -1)


def deeper(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.depth < 8, lambda s: -s.depth, rng)
    return None if i is None else _edit(spec, "add", f"stages[{i}].depth", 1)


def lower_expand(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.expand > 1 and s.block in _EXPANDABLE, lambda s: s.expand, rng)
    return None if i is None else _edit(spec, "scale", f"stages[{i}].expand", 0.5)


def higher_expand(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.block in _EXPANDABLE and s.expand < 8, lambda s: -s.expand, rng)
    return None if i is None else _edit(spec, "scale", f"stages[{i}].expand", 1.5)


def smaller_kernel(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.kernel > 3, lambda s: s.kernel, rng)
    return None if i is None else _edit(spec, "set", f"stages[{i}].kernel", 3)


def larger_kernel(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.kernel < 7, lambda s: -s.kernel, rng)
    return None if i is None else _edit(spec, "add", f"stages[{i}].kernel", 2)


def drop_attention(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.attention != "none", lambda s: s.attention == "mhsa", rng)
    return None if i is None else _edit(spec, "set", f"stages[{i}].attention", "none")


def add_attention(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = _pick(spec, lambda s: s.attention == "none", lambda s: s.channels, rng)
    kind = "se" if rng is None else str(rng.choice(["se", "eca", "cbam"]))
    return None if i is None else _edit(spec, "set", f"stages[{i}].attention", kind)


def drop_stage(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    return _edit(spec, "remove_stage", "", -1) if len(spec.stages) > 2 else None


def add_stage(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    last = spec.stages[-1]
    stride = 2 if final_size(spec, c) >= 4 else 1
    width = min(1024, last.channels * 2 if stride == 2 else last.channels)
    return _edit(spec, "append_stage", "", {"channels": width, "depth": 1, "stride": stride})


def earlier_downsample(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    if final_size(spec, c) < 2:
        return None
    i = next((i for i, s in enumerate(spec.stages) if s.stride == 1), None)
    return None if i is None else _edit(spec, "set", f"stages[{i}].stride", 2)


def later_downsample(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    i = next((i for i, s in enumerate(spec.stages) if s.stride == 2), None)
    return None if i is None else _edit(spec, "set", f"stages[{i}].stride", 1)


def lower_resolution(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    return _edit(spec, "scale", "resolution", 0.5) if spec.resolution > 1 else None


def higher_resolution(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    if spec.resolution >= 2 or c.image_size > 16:
        return None
    return _edit(spec, "scale", "resolution", 2.0)


def slimmer_head(spec: ArchSpec, c: Constraints, rng: Rng = None) -> ArchSpec | None:
    new = _edit(spec, "set", "head.channels", 0)
    return _edit(new or spec, "set", "head.hidden", 0) or new


SHRINK_MOVES: dict[str, Move] = {
    "narrower": narrower, "narrower-stage": narrower_stage, "shallower": shallower,
    "lower-expand": lower_expand, "smaller-kernel": smaller_kernel,
    "drop-attention": drop_attention, "drop-stage": drop_stage,
    "earlier-downsample": earlier_downsample, "lower-resolution": lower_resolution,
    "slimmer-head": slimmer_head,
}
GROW_MOVES: dict[str, Move] = {
    "wider": wider, "wider-stage": wider_stage, "deeper": deeper, "higher-expand": higher_expand,
    "larger-kernel": larger_kernel, "add-attention": add_attention, "add-stage": add_stage,
    "later-downsample": later_downsample, "higher-resolution": higher_resolution,
}
INVERSE_MOVE: dict[str, str] = {
    "narrower": "wider", "narrower-stage": "wider-stage", "shallower": "deeper",
    "lower-expand": "higher-expand", "smaller-kernel": "larger-kernel",
    "drop-attention": "add-attention", "drop-stage": "add-stage",
    "earlier-downsample": "later-downsample", "lower-resolution": "higher-resolution",
}
INVERSE_MOVE.update({v: k for k, v in list(INVERSE_MOVE.items())})
ALL_MOVES: dict[str, Move] = {**SHRINK_MOVES, **GROW_MOVES}
