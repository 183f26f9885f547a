"""SWNAS in the open space: its edits, their validation, and the signals as prompt text.

In the open space a *node* is a stage of an :class:`~archlore.search.spaces.open_spec.ArchSpec`
(``stage1`` .. ``stageK``, input to output) and its *ops* are the candidate block types
(:data:`OPEN_BLOCKS`). The signals are the same :class:`~.messages.StructuralSignals` with
``space="open"``: one row per stage instead of one per NB201 edge, and one node importance
per stage. The edits:

* :class:`MaskBlock` -- remove a block type from a stage for the rest of the search;
* :class:`PreferBlock` -- a bonus for a block on a stage at discretisation;
* :class:`~.messages.AddNode` -- insert a new stage (stride 1, the width of the stage it
  follows) after stage ``after`` (0: right after the stem), its alpha tilted towards ``op``.
  The new node is trained from then on and is dropped again at discretisation when its
  measured importance stays below ``tau`` (it is an identity-shortcut stage, so dropping it
  is exact).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from archlore.search.swnas.messages import StructuralSignals

# The block types a stage chooses between (the open space's residual blocks; dense and
# plain stages are left out: their shapes/shortcuts do not mix with the others').
OPEN_BLOCKS: tuple[str, ...] = ("basic", "bottleneck", "mbconv", "fused", "dwsep", "inception",
                                "convnext")
OpenBlock = Literal["basic", "bottleneck", "mbconv", "fused", "dwsep", "inception", "convnext"]
MAX_STAGES = 6  # ArchSpec's limit


class MaskBlock(BaseModel):
    """Remove ``block`` from stage ``stage`` (1-based) for the rest of the search."""

    kind: Literal["mask_block"] = "mask_block"
    stage: int = Field(ge=1, le=MAX_STAGES)
    block: OpenBlock
    reason: str = ""


class PreferBlock(BaseModel):
    """Multiply ``block``'s synergistic score on stage ``stage`` by ``strength``."""

    kind: Literal["prefer_block"] = "prefer_block"
    stage: int = Field(ge=1, le=MAX_STAGES)
    block: OpenBlock
    strength: float = Field(1.5, gt=1.0, le=4.0)
    reason: str = ""


def stage_label(i: int) -> str:
    return f"stage{i + 1}"


def validate_open_edits(edits: list, signals: StructuralSignals) -> tuple[list, list[tuple]]:
    """``(accepted, [(rejected edit, reason), ...])`` for an open-space search's signals.
    Edits are checked in order; stage numbers refer to the stages *before* any AddNode of the
    same answer (nodes are inserted after the masks and preferences are applied)."""
    from archlore.search.swnas.messages import AddNode, MaskOp, PreferOp

    allowed = ~np.asarray(signals.masked, dtype=bool)
    k0 = k = len(signals.edges)  # stage numbers refer to the net before this answer
    add_left = signals.add_left
    accepted: list = []
    rejected: list[tuple] = []
    seen: set[tuple] = set()
    for edit in edits:
        if isinstance(edit, MaskOp | PreferOp):
            rejected.append((edit, f"{edit.kind} names an NAS-Bench-201 edge; in the open space "
                                   "use mask_block / prefer_block with a stage number"))
            continue
        if isinstance(edit, AddNode):
            if edit.op not in signals.ops:
                rejected.append((edit, f"unknown block {edit.op!r} (known: "
                                       f"{', '.join(signals.ops)})"))
            elif edit.after > k0:
                rejected.append((edit, f"after={edit.after}: the net has {k0} stages"))
            elif k + 1 > MAX_STAGES:
                rejected.append((edit, f"the net already has {k} stages (at most {MAX_STAGES})"))
            elif add_left <= 0:
                rejected.append((edit, "no more nodes may be added in this search"))
            else:
                accepted.append(edit)
                add_left -= 1
                k += 1
            continue
        if not isinstance(edit, MaskBlock | PreferBlock):
            rejected.append((edit, f"unknown edit {edit!r}"))
            continue
        if edit.stage > len(signals.edges):
            rejected.append((edit, f"stage {edit.stage}: the net has {len(signals.edges)} "
                                   "stages"))
            continue
        key = (edit.kind, edit.stage, edit.block)
        if key in seen:
            rejected.append((edit, "duplicate edit"))
            continue
        s, o = edit.stage - 1, signals.ops.index(edit.block)
        if not allowed[s, o]:
            rejected.append((edit, f"{edit.block} is already masked on stage {edit.stage}"))
            continue
        if isinstance(edit, MaskBlock):
            if allowed[s].sum() <= 1:
                rejected.append((edit, f"masking {edit.block} would leave stage {edit.stage} "
                                       "no block"))
                continue
            allowed[s, o] = False
        seen.add(key)
        accepted.append(edit)
    return accepted, rejected


def apply_open_edits(edits: list, mask, prefer: np.ndarray):
    """Masks and preferences of accepted edits -> (new mask, new prefer); AddNode edits are
    left to the search (they change the supernet)."""
    mask, prefer = mask.clone(), prefer.copy()
    for edit in edits:
        if isinstance(edit, MaskBlock | PreferBlock):
            s = edit.stage - 1
            o = OPEN_BLOCKS.index(edit.block)
            if isinstance(edit, MaskBlock):
                mask[s, o] = False
            else:
                prefer[s, o] *= edit.strength
    return mask, prefer


def render_open_signals(signals: StructuralSignals) -> str:
    """Compact prompt text: one line per stage (its node importance, whether it can be
    dropped, and per block ``weight(trend)/importance`` or ``masked``)."""
    lines = [
        f"SWNAS signals after epoch {signals.epoch} (open space: the net is a chain of "
        f"{len(signals.edges)} stages; each stage mixes the block types below; trends = change "
        f"per epoch over the last {signals.window} epochs).",
        "Per stage: I = node importance (validation-loss rise when the stage's blocks are "
        "bypassed, relative to the largest); per block: weight=softmax(alpha) (trend) / "
        "importance=validation-loss rise when the block is removed.",
        "stage  | I (trend) | " + " | ".join(f"{o:>20}" for o in signals.ops),
    ]
    for s, label in enumerate(signals.edges):
        cells = []
        for o in range(len(signals.ops)):
            if signals.masked[s][o]:
                cells.append(f"{'masked':>20}")
            else:
                cells.append(f"{signals.alpha[s][o]:.3f}({signals.alpha_trend[s][o]:+.3f})/"
                             f"{signals.op_importance[s][o]:+.4f}".rjust(20))
        tag = " added" if signals.added and signals.added[s] else ""
        lines.append(f"{label:6} | {signals.node_importance[s]:.2f}({signals.node_trend[s]:+.3f})"
                     f"{tag} | " + " | ".join(cells))
    return "\n".join(lines)
