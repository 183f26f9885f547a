"""The open-ended search space: ArchSpec architectures rendered to PyTorch ``Net`` code.

``OpenSpace`` (registered as ``"open"``) offers seeds, random sampling, rendering, a cheap MACs
estimate (torch's FlopCounterMode on the meta device, MACs per image = FLOPs / 2, the
evaluator's convention), descriptors for quality-diversity archives, crossover, and the named
structural *moves* behind Pareto-aware mutation: ``shrink`` (cut MACs) and ``grow`` (gain
capacity). The spec and its edit language live in ``open_spec``, the renderer in ``open_render``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from archlore.search.protocol import Constraints
from archlore.search.registry import register_space
from archlore.search.spaces.open_moves import ALL_MOVES, GROW_MOVES, INVERSE_MOVE, SHRINK_MOVES
from archlore.search.spaces.open_render import channels, render
from archlore.search.spaces.open_spec import (
    ArchSpec,
    Head,
    Init,
    Stage,
    Stem,
    apply_edit,
    apply_edits,
)

__all__ = ["ArchSpec", "Stage", "Stem", "Head", "Init", "OpenSpace", "apply_edit", "apply_edits",
           "render", "measure", "fits", "SHRINK_MOVES", "GROW_MOVES", "INVERSE_MOVE", "ALL_MOVES"]


# ----------------------------------------------------------------------------------------------
# cost


@lru_cache(maxsize=4096)
def _measure_cached(code: str, in_channels: int, num_classes: int, size: int) -> tuple[int, int]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    namespace: dict[str, Any] = {}
    exec(compile(code, "<archspec>", "exec"), namespace)  # our own rendered code, not a candidate's
    with torch.device("meta"):
        net = namespace["Net"](num_classes=num_classes, in_channels=in_channels)
        # batch 2, as the evaluator counts: per-group norms reject one value per group, which a
        # batch of 1 gives on 1x1 maps (GroupNorm with one channel per group)
        x = torch.empty(2, in_channels, size, size)
    net.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    params = sum(p.numel() for p in net.parameters())
    return int(round(counter.get_total_flops() / 2 / 2)), params


def measure(spec: ArchSpec, constraints: Constraints) -> tuple[int, int]:
    """(MACs per image, parameter count) of ``spec`` at the constraints' input shape."""
    return _measure_cached(render(spec), constraints.in_channels, constraints.num_classes,
                           constraints.image_size)


def fits(spec: ArchSpec, constraints: Constraints) -> bool:
    macs, params = measure(spec, constraints)
    if constraints.max_mmacs is not None and macs > constraints.max_mmacs * 1e6:
        return False
    return constraints.max_params is None or params <= constraints.max_params


# ----------------------------------------------------------------------------------------------
# the space


def _stages(block: str, widths: list[int], depths: list[int], **kw: Any) -> list[Stage]:
    return [Stage(block=block, channels=w, depth=d, stride=1 if i == 0 else 2, **kw)
            for i, (w, d) in enumerate(zip(widths, depths, strict=True))]


@register_space("open")
class OpenSpace:
    """Open-ended space over ArchSpec. Every method is deterministic given its arguments."""

    name = "open"
    needs_code = True
    default_backend = "pool"

    # -- genomes as text -------------------------------------------------------------------------
    def encode(self, spec: ArchSpec) -> str:
        return spec.to_json()

    def decode(self, arch: str) -> ArchSpec:
        return ArchSpec.from_json(arch)

    # -- sampling ------------------------------------------------------------------------------
    def seeds(self, constraints: Constraints | None = None) -> list[ArchSpec]:
        """Four small, diverse starting nets sized for the input (2 downsamplings at <= 16 px,
        3 above); shrunk to fit the constraints' caps. On 8x8 digits: ~0.1-1 MMACs each."""
        c = constraints or Constraints()
        n = 3 if c.image_size <= 16 else 4
        seeds = [
            ArchSpec(name="seed-plain", downsample="maxpool", head=Head(hidden=64),  # VGG-like
                     stages=_stages("plain", [16, 32, 64, 128][:n], [1] * n, skip=False)),
            ArchSpec(name="seed-resnet", stages=_stages("basic", [16, 32, 64, 128][:n], [1] * n)),
            ArchSpec(name="seed-mobilenet", act="relu6",
                     stages=_stages("mbconv", [16, 24, 40, 80][:n], [1, 2, 2, 2][:n], expand=4.0)),
            ArchSpec(name="seed-convnext", norm="ln", act="gelu", stem=Stem(channels=24),
                     stages=_stages("convnext", [24, 48, 96, 192][:n], [1, 1, 2, 1][:n], expand=4.0,
                                    kernel=5)),
        ]
        return [self.fit(s, c) for s in seeds]

    def random(self, rng: np.random.Generator, constraints: Constraints | None = None) -> ArchSpec:
        """A random, valid spec within the caps."""
        c = constraints or Constraints()
        n = int(rng.integers(2, 4 if c.image_size <= 16 else 5))
        width = int(rng.choice([8, 12, 16, 24, 32]))
        stages = []
        for i in range(n):
            block = str(rng.choice(["plain", "basic", "bottleneck", "mbconv", "fused", "convnext",
                                    "dwsep", "dense", "inception"]))
            expand = {"bottleneck": 0.5, "mbconv": 4.0, "fused": 2.0, "convnext": 4.0,
                      "dense": 0.25}.get(block, 1.0)
            stages.append(Stage(
                block=block, channels=width * 2 ** i, depth=int(rng.integers(1, 3)),
                stride=1 if i == 0 else 2, kernel=int(rng.choice([3, 3, 5])), expand=expand,
                attention=str(rng.choice(["none", "none", "se", "eca", "cbam"])),
                skip=bool(rng.random() < 0.8)))
        spec = ArchSpec(
            name=f"random-{int(rng.integers(1 << 30))}", stem=Stem(channels=width), stages=stages,
            norm=str(rng.choice(["bn", "bn", "gn", "ln"])),
            act=str(rng.choice(["relu", "relu6", "gelu", "silu", "hardswish", "mish"])),
            downsample=str(rng.choice(["stride", "stride", "maxpool", "avgpool", "blur"])),
            head=Head(dropout=float(rng.choice([0.0, 0.1, 0.2]))))
        return self.fit(spec, c)

    # -- code and cost -------------------------------------------------------------------------
    def render(self, spec: ArchSpec, constraints: Constraints | None = None) -> str:
        return render(spec)

    def estimate_macs(self, spec: ArchSpec, constraints: Constraints | None = None) -> int:
        """MACs per image at the constraints' input shape (FlopCounterMode on meta tensors)."""
        return measure(spec, constraints or Constraints())[0]

    def estimate_params(self, spec: ArchSpec, constraints: Constraints | None = None) -> int:
        return measure(spec, constraints or Constraints())[1]

    def descriptor_ranges(self, constraints: Constraints | None = None
                          ) -> dict[str, tuple[float, float]]:
        c = constraints or Constraints()
        return {"width_depth_ratio": (0.0, 200.0), "mmacs": (0.01, c.max_mmacs or 5000.0)}

    def describe(self, spec: ArchSpec, constraints: Constraints | None = None) -> dict[str, Any]:
        """Descriptors for archives/reports: depth, widths, width/depth ratio, block mix, cost."""
        widths = [channels(s.channels, spec.width) for s in spec.stages]
        blocks = spec.total_blocks()
        d: dict[str, Any] = {
            "stages": len(spec.stages), "blocks": blocks,
            "mean_width": float(np.mean(widths)), "max_width": max(widths),
            "width_depth_ratio": float(np.mean(widths)) / blocks,
            "block_types": sorted({s.block for s in spec.stages}),
            "attention": sorted({s.attention for s in spec.stages} - {"none"}),
            "norm": spec.norm, "act": spec.act, "downsample": spec.downsample,
        }
        if constraints is not None:
            macs, params = measure(spec, constraints)
            d.update(macs=macs, mmacs=macs / 1e6, params=params, log10_macs=math.log10(max(macs, 1)))
        return d

    # -- variation -----------------------------------------------------------------------------
    def crossover(self, a: ArchSpec, b: ArchSpec, rng: np.random.Generator,
                  constraints: Constraints | None = None) -> ArchSpec:
        """Uniform crossover: each global field and each stage slot from either parent;
        the stage count is one parent's. Shrunk to fit the caps when constraints are given."""
        pick = lambda x, y: x if rng.random() < 0.5 else y  # noqa: E731
        n = len(pick(a, b).stages)
        stages = []
        for i in range(n):
            options = [p.stages[i] for p in (a, b) if i < len(p.stages)]
            stages.append(options[int(rng.integers(len(options)))].model_copy(deep=True))
        fields = {f: getattr(pick(a, b), f) for f in ("stem", "norm", "act", "downsample", "head",
                                                       "init", "drop_path", "width", "resolution")}
        child = ArchSpec.model_validate({**{k: (v.model_dump() if hasattr(v, "model_dump") else v)
                                            for k, v in fields.items()},
                                         "name": f"{a.name}x{b.name}"[:60],
                                         "stages": [s.model_dump() for s in stages]})
        return child if constraints is None else self.fit(child, constraints)

    def mutate(self, spec: ArchSpec, rng: np.random.Generator,
               constraints: Constraints | None = None) -> ArchSpec:
        """One random named move that changes the spec and fits the caps (the space's own,
        knowledge-free variation: REA and random-walk baselines use it)."""
        c = constraints or Constraints()
        names = list(ALL_MOVES)
        for i in rng.permutation(len(names)):
            child = ALL_MOVES[names[int(i)]](spec, c, rng)
            if child is not None and child.key() != spec.key() and fits(child, c):
                return child
        return self.random(rng, c)  # nothing applies: jump elsewhere rather than stall

    def move(self, spec: ArchSpec, name: str, constraints: Constraints | None = None,
             rng: np.random.Generator | None = None) -> ArchSpec | None:
        """Apply one named move (see open_moves); None if it does not apply."""
        return ALL_MOVES[name](spec, constraints or Constraints(), rng)

    def shrink_options(self, spec: ArchSpec, constraints: Constraints | None = None,
                       rng: np.random.Generator | None = None) -> list[tuple[int, str, ArchSpec]]:
        """(MACs, move name, spec) for every shrink move that cuts MACs."""
        c = constraints or Constraints()
        base = self.estimate_macs(spec, c)
        options = []
        for name, mv in SHRINK_MOVES.items():
            new = mv(spec, c, rng)
            if new is not None and (m := self.estimate_macs(new, c)) < base:
                options.append((m, name, new))
        return options

    def shrink_step(self, spec: ArchSpec, constraints: Constraints | None = None,
                    rng: np.random.Generator | None = None) -> tuple[ArchSpec, str] | None:
        """One MACs-cutting move: random among those that cut MACs (rng given) or the one that
        cuts most (no rng). None if no move cuts MACs."""
        options = self.shrink_options(spec, constraints, rng)
        if not options:
            return None
        return _choose(options, rng)

    def grow_step(self, spec: ArchSpec, constraints: Constraints | None = None,
                  rng: np.random.Generator | None = None) -> tuple[ArchSpec, str] | None:
        """One capacity-adding move whose result still fits the caps: random (rng given) or the
        cheapest. None if nothing fits."""
        c = constraints or Constraints()
        options = []
        for name, mv in GROW_MOVES.items():
            new = mv(spec, c, rng)
            if new is not None and fits(new, c):
                options.append((self.estimate_macs(new, c), name, new))
        if not options:
            return None
        return _choose(options, rng)

    def shrink(self, spec: ArchSpec, constraints: Constraints | None = None,
               rng: np.random.Generator | None = None) -> ArchSpec:
        step = self.shrink_step(spec, constraints, rng)
        return spec if step is None else step[0]

    def grow(self, spec: ArchSpec, constraints: Constraints | None = None,
             rng: np.random.Generator | None = None) -> ArchSpec:
        step = self.grow_step(spec, constraints, rng)
        return spec if step is None else step[0]

    def fit(self, spec: ArchSpec, constraints: Constraints | None = None) -> ArchSpec:
        """``spec`` shrunk until the caps hold (see ``fit_steps``)."""
        return self.fit_steps(spec, constraints or Constraints())[0]

    def fit_steps(self, spec: ArchSpec, constraints: Constraints,
                  max_steps: int = 40) -> tuple[ArchSpec, list[str]]:
        """Shrink until the caps hold, returning the moves taken. Each step takes the gentlest
        move that already fits (the most MACs left), else the move that cuts most. Raises
        ValueError when no sequence of moves reaches the caps."""
        moves: list[str] = []
        for _ in range(max_steps):
            if fits(spec, constraints):
                return spec, moves
            options = self.shrink_options(spec, constraints)
            if not options:
                break
            fitting = [o for o in options if fits(o[2], constraints)]
            _, name, spec = max(fitting, key=lambda o: o[0]) if fitting else min(options, key=lambda o: o[0])
            moves.append(name)
        if fits(spec, constraints):
            return spec, moves
        macs, params = measure(spec, constraints)
        raise ValueError(f"cannot fit caps (max_mmacs={constraints.max_mmacs}, "
                         f"max_params={constraints.max_params}): smallest reachable net has "
                         f"{macs / 1e6:.3f} MMACs, {params} params")


def _choose(options: list[tuple[int, str, ArchSpec]],
            rng: np.random.Generator | None) -> tuple[ArchSpec, str]:
    """A random option (rng given) or the one with the fewest MACs; options are (macs, move, spec)."""
    _, name, new = options[int(rng.integers(len(options)))] if rng is not None else min(
        options, key=lambda o: o[0])
    return new, name
