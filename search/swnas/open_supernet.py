"""The open-space supernet: a chain of mixed stages over an ArchSpec skeleton.

The skeleton is a base :class:`ArchSpec` (its stem, head, norm, activation, downsampling and
every stage's width, depth, stride, kernel, attention and shortcut). Stage ``i`` becomes a
:class:`MixedStage`: ``sum_b w_b * stage_b(x)`` over the block types of
:data:`~.open_messages.OPEN_BLOCKS`, where ``stage_b`` is the base stage with its block set
to ``b``. Every module is built from archlore's own rendered code for a one-stage spec
(:func:`~archlore.search.spaces.open_render.render`), so the supernet's candidates are
exactly the networks the derived spec renders to -- nothing is re-implemented here.

Node masking: ``node_scale[i] = 0`` bypasses stage ``i``. A *droppable* stage (stride 1, same
width, identity shortcut) then returns its input: exactly the net without it. Any other stage
passes only its shortcuts: its residual branches are multiplied by 0 (a forward hook on each
``Residual.body``), leaving a 1x1 projection, or nothing for a stage without shortcut. The
supernet has no dropout (its steps and signals draw no random numbers).

:meth:`OpenSupernet.add_node` inserts a new mixed stage (stride 1, the width of the stage it
follows, depth 1, 3x3 kernel, identity shortcut) during the search.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F
from archlore.search.spaces.open_render import channels, render
from archlore.search.spaces.open_spec import ArchSpec, Head, Stage, Stem
from archlore.search.swnas.open_messages import OPEN_BLOCKS
from archlore.search.swnas.supernet import ArchParams

# hidden-width ratio per block type when a stage switches to it (as the open space's seeds)
EXPAND = {"basic": 1.0, "bottleneck": 0.5, "mbconv": 4.0, "fused": 2.0, "dwsep": 1.0,
          "inception": 1.0, "convnext": 4.0}


def bake(spec: ArchSpec) -> ArchSpec:
    """``spec`` with its width multiplier folded into every channel count (width 1), so a
    stage's input width is known before rendering."""
    w = spec.width
    return spec.model_copy(update={
        "width": 1.0, "name": spec.name,
        "stem": spec.stem.model_copy(update={"channels": channels(spec.stem.channels, w)}),
        "stages": [s.model_copy(update={"channels": channels(s.channels, w)})
                   for s in spec.stages],
        "head": spec.head.model_copy(update={
            "channels": channels(spec.head.channels, w) if spec.head.channels else 0}),
    }, deep=True)


def with_block(stage: Stage, block: str) -> Stage:
    """``stage`` switched to ``block`` (its expansion ratio, plain convs, no shuffle)."""
    return stage.model_copy(update={"block": block, "expand": EXPAND[block], "groups": 1,
                                    "shuffle": False})


@lru_cache(maxsize=256)
def _net_class(code: str) -> type[nn.Module]:
    namespace: dict = {}
    exec(compile(code, "<swnas-open>", "exec"), namespace)  # our own renderer's output
    return namespace["Net"]


def build_stage(base: ArchSpec, stage: Stage, cin: int, in_channels: int = 3) -> nn.Module:
    """The rendered module of ``stage`` with input width ``cin`` in ``base``'s style."""
    one = base.model_copy(update={
        "stem": Stem.model_construct(channels=cin, kernel=1, stride=1, depth=1),
        "stages": [stage], "head": Head(), "drop_path": 0.0, "resolution": 1.0,
    })
    return _net_class(render(one))(num_classes=2, in_channels=in_channels).stage1


def _residual_bodies(module: nn.Module) -> list[nn.Module]:
    return [m.body for m in module.modules() if type(m).__name__ == "Residual"]


class MixedStage(nn.Module):
    """``sum_b w_b * stage_b(x)``; blocks with weight exactly 0 are skipped. ``scale`` (set by
    the supernet around a forward) multiplies every block's residual branch."""

    def __init__(self, base: ArchSpec, stage: Stage, cin: int) -> None:
        super().__init__()
        self.stage = stage
        self.cin = cin
        self.blocks = nn.ModuleList(build_stage(base, with_block(stage, b), cin)
                                    for b in OPEN_BLOCKS)
        self.scale: torch.Tensor | None = None
        for block in self.blocks:
            for body in _residual_bodies(block):
                body.register_forward_hook(self._scale_branch)

    def _scale_branch(self, module: nn.Module, args: tuple, out: torch.Tensor):
        # a droppable stage is bypassed as a whole in forward (exactly its removal)
        return None if self.scale is None or self.droppable else out * self.scale

    @property
    def droppable(self) -> bool:
        """Bypassing this stage is exactly removing it (identity shortcut, shape kept)."""
        s = self.stage
        return s.skip and s.stride == 1 and self.cin == s.channels

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = None
        for k, block in enumerate(self.blocks):
            if float(w[k].detach()) != 0.0:
                y = w[k] * block(x)
                out = y if out is None else out + y
        assert out is not None, "every block of a stage is masked"
        if self.scale is not None and self.droppable:
            # zeroed: the identity, i.e. the net without this stage (a residual branch set to
            # zero would still pass the block's post-activation)
            return self.scale * out + (1 - self.scale) * x
        return out


class OpenSupernet(ArchParams, nn.Module):
    """Mixed stages over ``base`` (baked); ``alpha`` is (stages x blocks)."""

    def __init__(self, base: ArchSpec, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.base = bake(base)
        self.in_channels = in_channels
        skeleton = _net_class(render(self.base))(num_classes=num_classes,
                                                 in_channels=in_channels)
        self.stem, self.head_conv, self.classifier = (skeleton.stem, skeleton.head_conv,
                                                      skeleton.classifier)
        for i, m in enumerate(self.classifier):  # no dropout in the supernet: its signals and
            if isinstance(m, nn.Dropout):        # steps must not draw from the global RNG
                self.classifier[i] = nn.Identity()
        stages = nn.ModuleList()
        cin = self.base.stem.channels
        for stage in self.base.stages:
            stages.append(MixedStage(self.base, stage, cin))
            cin = stage.channels
        self.stages = stages
        self.added: list[bool] = [False] * len(stages)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(stages), len(OPEN_BLOCKS)))

    def add_node(self, after: int, block: str, tilt: float = 1.0) -> list[nn.Parameter]:
        """Insert a mixed stage after stage ``after`` (0: after the stem); returns its new
        weight parameters. ``alpha`` is replaced by a tensor with the new row (``tilt`` added
        to ``block``'s logit): the caller re-registers it with its optimiser."""
        cin = self.base.stem.channels if after == 0 else self.stages[after - 1].stage.channels
        stage = Stage(block=block, channels=cin, depth=1, stride=1, kernel=3,
                      expand=EXPAND[block])
        node = MixedStage(self.base, stage, cin)
        node.to(self.alpha.device)
        self.stages.insert(after, node)
        self.added.insert(after, True)
        row = torch.zeros(1, len(OPEN_BLOCKS), device=self.alpha.device)
        row[0, OPEN_BLOCKS.index(block)] = tilt
        with torch.no_grad():
            new = torch.cat([self.alpha[:after], row, self.alpha[after:]])
        self.alpha = nn.Parameter(new)
        return list(node.parameters())

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                node_scale: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mixing_weights() if weights is None else weights
        if self.base.resolution != 1.0:
            x = F.interpolate(x, scale_factor=self.base.resolution, mode="bilinear",
                              align_corners=False)
        h = self.stem(x)
        for i, stage in enumerate(self.stages):
            stage.scale = None if node_scale is None else node_scale[i]
            try:
                h = stage(h, w[i])
            finally:
                stage.scale = None
        h = self.head_conv(h)
        pool = self.base.head.pool
        if pool == "avg":
            h = F.adaptive_avg_pool2d(h, 1)
        elif pool == "max":
            h = F.adaptive_max_pool2d(h, 1)
        else:
            h = 0.5 * (F.adaptive_avg_pool2d(h, 1) + F.adaptive_max_pool2d(h, 1))
        return self.classifier(h.flatten(1))

    def derive(self, choice: list[str | None], name: str = "swnas-open") -> ArchSpec:
        """The spec of one discretisation: ``choice[i]`` is stage ``i``'s block, or None to
        drop it (only for droppable stages)."""
        stages = []
        for stage, block in zip(self.stages, choice, strict=True):
            if block is None:
                if not stage.droppable:
                    raise ValueError(f"stage {stage.stage} cannot be dropped")
                continue
            stages.append(with_block(stage.stage, block))
        if not stages:
            raise ValueError("a derived net needs at least one stage")
        return self.base.model_copy(update={"stages": stages, "name": name})
