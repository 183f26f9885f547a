"""ArchSpec: the structured architecture description of the open-ended space, and its edits.

An ``ArchSpec`` is plain data (pydantic). ``search.spaces.open_render`` turns it into readable,
standalone PyTorch ``Net`` source; ``apply_edits`` applies ``knowledge.schema.ArchEdit`` lists.

Edit path language (``ArchEdit.path``): dotted field names with list indexing on ``stages``:
``act``, ``width``, ``stem.channels``, ``stages[0].depth``, ``stages[-1].kernel``,
``stages[*].block`` (every stage), ``stages[1:].attention`` (a Python slice), ``head.dropout``,
``init.scheme``. Ops: ``set`` (value must be valid, else ValueError), ``scale`` / ``add`` (numbers;
the result is rounded for int fields and clamped into the field's bounds, so "twice as deep" stays
legal), ``append_stage`` (value: a dict of Stage fields; missing ones are copied from the last
stage), ``remove_stage`` (value: an index, default -1; the last remaining stage cannot go).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from archlore.knowledge.schema import ArchEdit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Block = Literal["plain", "basic", "bottleneck", "mbconv", "fused", "convnext", "dwsep", "dense",
                "inception"]
Attention = Literal["none", "se", "eca", "cbam", "mhsa"]
Norm = Literal["bn", "gn", "ln", "none"]
Act = Literal["relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "hardswish", "mish"]
Downsample = Literal["stride", "maxpool", "avgpool", "blur"]
Pool = Literal["avg", "max", "avgmax"]
InitScheme = Literal["default", "kaiming", "xavier", "trunc_normal"]

SPEC_HEADER = "# archlore-spec: "


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Stem(_Strict):
    """First convolution(s). ``kernel == stride`` with ``depth == 1`` is a patchify stem."""

    channels: int = Field(16, ge=4, le=256)
    kernel: int = Field(3, ge=1, le=7)
    stride: int = Field(1, ge=1, le=4)
    depth: int = Field(1, ge=1, le=3)  # >1: a "deep stem" of 3x3 convs (Bag of Tricks)


class Stage(_Strict):
    """``depth`` blocks of one type; the first block changes width and resolution (``stride``)."""

    block: Block = "basic"
    channels: int = Field(32, ge=4, le=1024)
    depth: int = Field(1, ge=1, le=8)
    stride: int = Field(1, ge=1, le=2)
    kernel: int = Field(3, ge=1, le=9)
    # hidden width = expand * output channels (bottleneck ~0.25, convnext ~4; mbconv/fused: expand *
    # input channels; dense: growth per layer = expand * channels)
    expand: float = Field(1.0, ge=0.125, le=8.0)
    groups: int = Field(1, ge=1, le=64)  # of the spatial conv; reduced to a divisor at render
    shuffle: bool = False  # channel shuffle after grouped convs (ShuffleNet)
    attention: Attention = "none"
    attn_ratio: float = Field(0.25, ge=0.0625, le=1.0)  # SE / CBAM reduction ratio
    skip: bool = True  # residual (identity or 1x1 projection) shortcut


class Head(_Strict):
    channels: int = Field(0, ge=0, le=2048)  # 1x1 conv before pooling (MobileNetV3); 0 = none
    pool: Pool = "avg"
    hidden: int = Field(0, ge=0, le=4096)  # hidden fully connected layer; 0 = none
    dropout: float = Field(0.0, ge=0.0, le=0.9)


class Init(_Strict):
    """Initialisation choices that live in the model code (the training loop is the evaluator's)."""

    scheme: InitScheme = "default"
    zero_init_residual: bool = False  # last norm of each residual branch starts at 0 (Goyal 2017)
    layer_scale: float = Field(0.0, ge=0.0, le=1.0)  # per-channel branch scale init; 0 = off


class ArchSpec(_Strict):
    """A whole network. Channels are rounded to multiples of 4 (times ``width``) at render."""

    name: str = "net"
    stem: Stem = Field(default_factory=Stem)
    stages: list[Stage] = Field(default_factory=lambda: [Stage()], min_length=1, max_length=6)
    norm: Norm = "bn"
    act: Act = "relu"
    downsample: Downsample = "stride"
    head: Head = Field(default_factory=Head)
    init: Init = Field(default_factory=Init)
    drop_path: float = Field(0.0, ge=0.0, le=0.5)  # stochastic depth, linear over blocks
    width: float = Field(1.0, ge=0.25, le=4.0)  # multiplier on every channel count
    resolution: float = Field(1.0, ge=0.5, le=4.0)  # input is resized by this factor

    def to_json(self) -> str:
        return self.model_dump_json()

    def key(self) -> str:
        """Canonical text of the architecture (name excluded), for caching and equality."""
        return json.dumps(self.model_dump(exclude={"name"}), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.model_validate_json(text)

    @classmethod
    def from_code(cls, code: str) -> ArchSpec | None:
        """Recover the spec from the ``# archlore-spec: {...}`` header of rendered code."""
        for line in code.splitlines():
            if line.startswith(SPEC_HEADER):
                try:
                    return cls.model_validate_json(line[len(SPEC_HEADER):])
                except ValidationError:
                    return None
        return None

    def total_blocks(self) -> int:
        return sum(s.depth for s in self.stages)


# ----------------------------------------------------------------------------------------------
# edits

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]*)\])?$")


def _select_stages(stages: list[Stage], index: str, path: str) -> list[int]:
    n = len(stages)
    index = index.strip()
    if index == "*":
        return list(range(n))
    try:
        if ":" in index:
            parts = [int(p) if p.strip() else None for p in index.split(":")]
            if len(parts) > 3:
                raise ValueError
            chosen = list(range(n))[slice(*parts)]
        else:
            i = int(index)
    except ValueError:
        raise ValueError(f"bad stage index [{index}] in path {path!r} (use N, -1, * or a:b)") from None
    if ":" in index:
        if not chosen:  # an edit that addresses nothing would silently do nothing
            raise ValueError(f"stage slice [{index}] selects no stage in path {path!r} "
                             f"(spec has {n} stages)")
        return chosen
    if not -n <= i < n:
        raise ValueError(f"stage index {i} out of range in path {path!r} (spec has {n} stages)")
    return [i % n]


def _targets(spec: ArchSpec, path: str) -> list[tuple[BaseModel, str]]:
    """(model, field name) pairs addressed by ``path``."""
    if not path:
        raise ValueError("edit path is empty")
    parts = path.split(".")
    objs: list[BaseModel] = [spec]
    for depth, part in enumerate(parts):
        m = _TOKEN.match(part.strip())
        if not m:
            raise ValueError(f"bad path segment {part!r} in {path!r}")
        name, index = m.group(1), m.group(2)
        last = depth == len(parts) - 1
        for obj in objs:
            if name not in type(obj).model_fields:
                known = ", ".join(type(obj).model_fields)
                raise ValueError(f"unknown field {name!r} in path {path!r} (known: {known})")
        if index is not None:
            if name != "stages" or last:
                raise ValueError(f"only 'stages' can be indexed, in path {path!r}")
            objs = [spec.stages[i] for i in _select_stages(spec.stages, index, path)]
            continue
        if last:
            return [(obj, name) for obj in objs]
        nxt = [getattr(obj, name) for obj in objs]
        if not all(isinstance(o, BaseModel) for o in nxt):
            raise ValueError(f"path {path!r}: {name!r} has no sub-fields")
        objs = nxt
    raise ValueError(f"path {path!r} addresses a list, not a field (add a field after [..])")


def _bounds(model: BaseModel, name: str) -> tuple[float | None, float | None]:
    lo = hi = None
    for meta in type(model).model_fields[name].metadata:
        lo = getattr(meta, "ge", lo)
        hi = getattr(meta, "le", hi)
    return lo, hi


def _numeric(model: BaseModel, name: str, op: str, value: Any, path: str) -> Any:
    current = getattr(model, name)
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise ValueError(f"cannot {op} non-numeric field {path!r}")
    if isinstance(value, str):  # "4096" from a JSON answer or a YAML file means 4096
        try:
            value = float(value)
        except ValueError:
            pass
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value)):
        raise ValueError(f"{op} on {path!r} needs a number, got {value!r}")
    new = current * value if op == "scale" else current + value
    lo, hi = _bounds(model, name)
    if lo is not None:
        new = max(lo, new)
    if hi is not None:
        new = min(hi, new)
    if isinstance(current, int):
        new = int(round(new))
        if name == "channels" and new > 0:
            new = max(4, int(round(new / 4)) * 4)  # keep channel counts multiples of 4
    return new


def apply_edit(spec: ArchSpec, edit: ArchEdit) -> ArchSpec:
    """One edit on a copy of ``spec``; raises ValueError naming the bad path or value."""
    new = spec.model_copy(deep=True)
    try:
        if edit.op == "append_stage":
            if not isinstance(edit.value, dict):
                raise ValueError(f"append_stage needs a dict of Stage fields, got {edit.value!r}")
            base = new.stages[-1].model_dump()
            base.update(edit.value)
            stages = [*new.stages, Stage.model_validate(base)]
            return ArchSpec.model_validate({**new.model_dump(), "stages": [s.model_dump() for s in stages]})
        if edit.op == "remove_stage":
            idx = -1 if edit.value is None else edit.value
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise ValueError(f"remove_stage needs an int index, got {idx!r}")
            if len(new.stages) <= 1:
                raise ValueError("remove_stage: cannot remove the only stage")
            if not -len(new.stages) <= idx < len(new.stages):
                raise ValueError(f"remove_stage: index {idx} out of range ({len(new.stages)} stages)")
            del new.stages[idx]
            return new
        for model, name in _targets(new, edit.path):
            if edit.op == "set":
                setattr(model, name, edit.value)  # validate_assignment checks type and bounds
            else:
                setattr(model, name, _numeric(model, name, edit.op, edit.value, edit.path))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(
            f"invalid value for {edit.path or edit.op!r}: {edit.value!r} ({first['msg']})") from None
    return new


def apply_edits(spec: ArchSpec, edits: list[ArchEdit]) -> ArchSpec:
    """Apply edits in order; the input spec is never modified."""
    for i, edit in enumerate(edits):
        try:
            spec = apply_edit(spec, edit)
        except ValueError as exc:
            raise ValueError(f"edit {i} ({edit.op} {edit.path}): {exc}") from None
    return spec
