"""Typed messages of SWNAS's "LLM step", the search settings and the search result.

Every ``advise_every`` epochs the search builds a :class:`StructuralSignals` (softmaxed alpha,
op and node importances, their trends) and hands it to an advisor: the deterministic
:func:`archlore.search.swnas.advisor.advise` or an LLM that reads :func:`render_signals` and
answers an :class:`AdvisorAnswer` (JSON schema: ``AdvisorAnswer.model_json_schema()``).
:func:`validate_edits` accepts or rejects each edit with a reason; :func:`apply_edits` turns
the accepted ones into the op mask (masked ops leave the space for the rest of the search) and
the preference factors (multipliers on the synergistic score at discretisation).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from archlore.search.spaces.nb201 import EDGES, OPS, connected
from archlore.search.swnas.open_messages import (
    MAX_STAGES,
    OPEN_BLOCKS,
    MaskBlock,
    OpenBlock,
    PreferBlock,
    render_open_signals,
    validate_open_edits,
)
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

EDGE_LABELS: tuple[str, ...] = tuple(f"{i}<-{j}" for i, j in EDGES)


# --- settings ---------------------------------------------------------------------------------

class SearchSettings(BaseModel):
    """Everything that determines a search's result (the cache key is their hash).

    Defaults are a reduced CPU size (8 channels, 1 cell per stage, 2,000 + 2,000 CIFAR-10
    training images at 32 px; the CPU benchmark also pools them to 16 px); NAS-Bench-201's
    size is ``channels=16, cells=5`` on 25,000 + 25,000 images at 32 px, ``epochs=50,
    a_lr=3e-4`` (GPU). One thread by default: on a shared CPU, more threads mostly spin.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = "cifar10"
    data_root: str | None = None
    epochs: int = Field(10, ge=1)
    cells: int = Field(1, ge=1)  # search cells per stage (NB201: 5)
    channels: int = Field(8, ge=1)  # stem width (NB201: 16)
    n_train: int = Field(2000, ge=1)  # weight-update images
    n_val: int = Field(2000, ge=1)  # alpha-update images (also the signal set's source)
    n_signal: int = Field(512, ge=1)  # images the perturbation signals are measured on
    image_size: int = Field(32, ge=4)  # < native: images are average-pooled down (CPU: 16)
    batch_size: int = Field(64, ge=2)
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_wd: float = 3e-4
    # DARTS uses 3e-4 over ~20k steps; a CPU search makes a few hundred steps, so alpha gets a
    # larger step to travel a comparable distance.
    a_lr: float = 3e-3
    a_wd: float = 1e-3
    seed: int = 0
    data_seed: int = 0  # fixes the image subset (same for every seed)
    # "open": the supernet mixes block types per stage of ``base`` (ArchSpec JSON; see
    # search.swnas.open_search); "nb201": the NAS-Bench-201 cell
    space: Literal["nb201", "open"] = "nb201"
    base: str | None = None
    max_added: int = Field(1, ge=0, le=MAX_STAGES)  # open space: AddNode edits per search
    advisor: str = "none"  # label of the advisor used ("none", "rules", "llm:<model>")
    advise_every: int = Field(0, ge=0)  # k: epochs between advisor steps (0: never)
    trend_window: int = Field(2, ge=1)
    lam: float = Field(0.75, ge=0.0, le=1.0)  # synergistic: weight of measured vs alpha
    tau: float = Field(0.1, ge=0.0, le=1.0)  # synergistic: node factor below which an edge is pruned
    threads: int = Field(1, ge=0)  # torch threads during the search (0: leave as is)
    # also derive the progressive synergistic cell (cells["progressive"]; docs/swnas.md 3b)
    progressive: bool = True

    def key(self) -> str:
        """Hash of the settings that change the result (not ``threads``/``data_root``)."""
        skip = {"threads", "data_root"}
        if self.space == "nb201":  # keys of NB201 searches stay what they were before the open space
            skip |= {"space", "base", "max_added"}
        text = self.model_dump_json(exclude=skip)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- signals ----------------------------------------------------------------------------------

class StructuralSignals(BaseModel):
    """What the advisor sees after ``epoch`` epochs. Tables are 6 edges x 5 ops in
    :data:`EDGE_LABELS` x ``OPS`` order; trends are per-epoch changes averaged over the last
    ``window`` epochs (0 when there is no history yet). In the open space (``space="open"``)
    rows are stages (``edges`` = ``stage1``..), ops are block types, and there is one node
    importance per stage (:mod:`.open_messages`)."""

    space: Literal["nb201", "open"] = "nb201"
    epoch: int
    window: int
    ops: list[str] = Field(default_factory=lambda: list(OPS))
    edges: list[str] = Field(default_factory=lambda: list(EDGE_LABELS))
    alpha: list[list[float]]  # softmax(alpha) per edge, masked ops 0
    alpha_trend: list[list[float]]
    op_importance: list[list[float]]  # validation-loss rise when the op is removed
    node_importance: list[float]  # I_0..I_3
    node_trend: list[float]
    masked: list[list[bool]]  # True: the op has been removed from the space
    added: list[bool] = Field(default_factory=list)  # open space: stages added by AddNode
    add_left: int = 0  # open space: how many more AddNode edits this search accepts

    @classmethod
    def from_history(cls, epoch: int, alphas: list, nodes: list, op_importance: list,
                     allowed: list[list[bool]], window: int, **extra) -> StructuralSignals:
        a = np.asarray(alphas, dtype=float)
        n = np.asarray(nodes, dtype=float)
        k = min(window, len(a) - 1)
        a_tr = (a[-1] - a[-1 - k]) / k if k > 0 else np.zeros_like(a[-1])
        n_tr = (n[-1] - n[-1 - k]) / k if k > 0 else np.zeros_like(n[-1])
        r = lambda m: np.round(np.asarray(m, dtype=float), 5).tolist()  # noqa: E731
        return cls(epoch=epoch, window=window, alpha=r(a[-1]), alpha_trend=r(a_tr),
                   op_importance=r(op_importance), node_importance=r(n[-1]),
                   node_trend=r(n_tr), masked=[[not x for x in row] for row in allowed],
                   **extra)

    def allowed(self, e: int, o: int) -> bool:
        return not self.masked[e][o]


# --- edits ------------------------------------------------------------------------------------

EdgeLabel = Literal["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
OpName = Literal["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


class MaskOp(BaseModel):
    """Remove ``op`` from ``edge`` for the rest of the search (its alpha weight becomes 0)."""

    kind: Literal["mask_op"] = "mask_op"
    edge: EdgeLabel
    op: OpName
    reason: str = ""


class PreferOp(BaseModel):
    """Multiply ``op``'s synergistic score on ``edge`` by ``strength`` at discretisation."""

    kind: Literal["prefer_op"] = "prefer_op"
    edge: EdgeLabel
    op: OpName
    strength: float = Field(1.5, gt=1.0, le=4.0)
    reason: str = ""


class AddNode(BaseModel):
    """Open space only: insert a new stage after stage ``after`` (0: after the stem) whose
    mixed op starts tilted towards block ``op`` (:mod:`.open_messages`). The NAS-Bench-201
    cell is fixed, so validation rejects it there."""

    kind: Literal["add_node"] = "add_node"
    after: int = Field(ge=0, le=MAX_STAGES)
    op: OpName | OpenBlock  # a cell op or a block type (the schema per space lists one set)
    reason: str = ""


CellEdit = Annotated[MaskOp | PreferOp | AddNode, Field(discriminator="kind")]
OpenEdit = Annotated[MaskBlock | PreferBlock | AddNode, Field(discriminator="kind")]
SpaceEdit = Annotated[MaskOp | PreferOp | AddNode | MaskBlock | PreferBlock,
                      Field(discriminator="kind")]


class AdvisorAnswer(BaseModel):
    """The advisor's (LLM's) answer on the NB201 cell: at most 12 edits and a rationale."""

    edits: list[CellEdit] = Field(default_factory=list, max_length=12)
    rationale: str = ""


class OpenAdvisorAnswer(BaseModel):
    """The advisor's answer in the open space (stage-level edits and AddNode)."""

    edits: list[OpenEdit] = Field(default_factory=list, max_length=12)
    rationale: str = ""


def answer_model(space: str) -> type[BaseModel]:
    return OpenAdvisorAnswer if space == "open" else AdvisorAnswer


def answer_schema(space: str) -> dict:
    """The answer's JSON schema for ``space``, AddNode's ``op`` limited to that space's names
    (a grammar-constrained model then cannot name a cell op in the open space)."""
    schema = answer_model(space).model_json_schema()
    names = list(OPEN_BLOCKS) if space == "open" else list(OPS)
    add = schema.get("$defs", {}).get("AddNode", {}).get("properties", {})
    if "op" in add:
        add["op"] = {"enum": names, "title": "Op", "type": "string"}
    return schema


def _possible_cell_connected(allowed: np.ndarray) -> bool:
    """Can some cell built from the allowed ops still link input to output?"""
    none = OPS.index("none")
    best = tuple("skip_connect" if allowed[e, :].sum() - allowed[e, none] > 0 else "none"
                 for e in range(len(EDGES)))
    return connected(best)


def validate_edits(edits: list, signals: StructuralSignals) -> tuple[list, list[tuple]]:
    """Check edits in order against the signals' current mask: returns ``(accepted,
    [(rejected edit, reason), ...])``. Masks are applied as they are accepted, so a later
    edit sees the earlier ones."""
    if signals.space == "open":
        return validate_open_edits(edits, signals)
    allowed = ~np.asarray(signals.masked, dtype=bool)
    accepted: list = []
    rejected: list[tuple] = []
    seen: set[tuple] = set()
    for edit in edits:
        if isinstance(edit, AddNode):
            rejected.append((edit, "the NAS-Bench-201 cell is fixed (4 nodes, 6 edges); "
                                   "add_node applies to the open space only"))
            continue
        if isinstance(edit, MaskBlock | PreferBlock):
            rejected.append((edit, f"{edit.kind} applies to the open space only (here: "
                                   "mask_op / prefer_op on an edge)"))
            continue
        if not isinstance(edit, MaskOp | PreferOp):
            rejected.append((edit, f"unknown edit {edit!r}"))
            continue
        key = (edit.kind, edit.edge, edit.op)
        if key in seen:
            rejected.append((edit, "duplicate edit"))
            continue
        e, o = EDGE_LABELS.index(edit.edge), OPS.index(edit.op)
        if not allowed[e, o]:
            rejected.append((edit, f"{edit.op} is already masked on {edit.edge}"))
            continue
        if isinstance(edit, MaskOp):
            trial = allowed.copy()
            trial[e, o] = False
            if not trial[e].any():
                rejected.append((edit, f"masking {edit.op} would leave {edit.edge} no op"))
                continue
            if not _possible_cell_connected(trial):
                rejected.append((edit, "no connected cell would remain"))
                continue
            allowed = trial
        seen.add(key)
        accepted.append(edit)
    return accepted, rejected


def apply_edits(edits: list, mask: torch.Tensor, prefer: np.ndarray
                ) -> tuple[torch.Tensor, np.ndarray]:  # torch stays out of the strategy import
    """Accepted edits -> (new allowed-op mask, new preference factors). Inputs unchanged."""
    mask, prefer = mask.clone(), prefer.copy()
    for edit in edits:
        e, o = EDGE_LABELS.index(edit.edge), OPS.index(edit.op)
        if isinstance(edit, MaskOp):
            mask[e, o] = False
        elif isinstance(edit, PreferOp):
            prefer[e, o] *= edit.strength
    return mask, prefer


_SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1x1",
          "nor_conv_3x3": "conv3x3", "avg_pool_3x3": "pool3x3"}


def render_signals(signals: StructuralSignals) -> str:
    """Compact text for an LLM prompt (~1 KB): nodes, then one row per edge with, per op,
    ``weight(trend)/importance`` -- or ``masked``."""
    if signals.space == "open":
        return render_open_signals(signals)
    nodes = " ".join(f"I{n}={v:.2f}({t:+.3f})" for n, (v, t) in
                     enumerate(zip(signals.node_importance, signals.node_trend, strict=True)))
    lines = [
        f"SWNAS signals after epoch {signals.epoch} (NAS-Bench-201 cell: node i sums op(node j) "
        f"over edges i<-j; trends = change per epoch over the last {signals.window} epochs).",
        "Node importance I (validation-loss rise when the node is zeroed, relative to the "
        f"output; I0, I3 fixed at 1): {nodes}",
        "Per edge and op: weight=softmax(alpha) (trend) / importance=validation-loss rise "
        "when the op is removed.",
        "edge  | " + " | ".join(f"{_SHORT[o]:>20}" for o in signals.ops),
    ]
    for e, label in enumerate(signals.edges):
        cells = []
        for o in range(len(signals.ops)):
            if signals.masked[e][o]:
                cells.append(f"{'masked':>20}")
            else:
                cells.append(f"{signals.alpha[e][o]:.3f}({signals.alpha_trend[e][o]:+.3f})/"
                             f"{signals.op_importance[e][o]:+.4f}".rjust(20))
        lines.append(f"{label:5} | " + " | ".join(cells))
    return "\n".join(lines)


# --- result -----------------------------------------------------------------------------------

class SearchResult(BaseModel):
    """One search: its settings, the signal history, edits, and the derived cells per
    discretisation (``cells[method][0]`` is the derived cell; the rest ranks alternatives)."""

    settings: SearchSettings
    alpha_history: list[list[list[float]]]
    node_history: list[list[float]]
    final: StructuralSignals
    edits: list[dict] = Field(default_factory=list)
    train_loss: list[float] = Field(default_factory=list)
    cells: dict[str, list[str]]
    supernet_val_acc: float
    wall_s: float
    progressive_trace: list[dict] = Field(default_factory=list)  # one entry per committed edge
