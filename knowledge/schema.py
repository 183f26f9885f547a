"""The design-idea template (FairNAD): what one architectural idea is, where it came from,
and what a mutator needs to apply it.

``Idea.edits`` are structured edits of the open-ended space's architecture description
(``search.spaces.open.ArchSpec``); ``Idea.cell_ops`` are edits of a NAS-Bench-201 cell.
Both are plain data here: knowledge/ does not know how they are applied.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field


class Category(str, Enum):
    """Closed vocabulary the search balances over."""

    STAGE_LAYOUT = "stage_layout"  # macro structure: stages, depths, widths per stage
    BLOCK_TYPE = "block_type"  # residual, bottleneck, inverted residual, ConvNeXt, ...
    CONNECTIVITY = "connectivity"  # skip / dense connections
    NORMALIZATION = "normalization"
    ACTIVATION = "activation"
    ATTENTION = "attention"  # attention / context: SE, CBAM, self-attention
    DOWNSAMPLING = "downsampling"  # strides, pooling, anti-aliasing
    SCALING = "scaling"  # width / depth / resolution scaling
    REGULARIZATION = "regularization"  # dropout, stochastic depth, ...
    TRAINING = "training"  # training recipe


class Direction(str, Enum):
    UP = "up"
    DOWN = "down"
    NEUTRAL = "neutral"
    UNKNOWN = "unknown"


class Effect(BaseModel):
    """Expected effect of applying the idea, as the paper reports it."""

    accuracy: Direction = Direction.UNKNOWN
    macs: Direction = Direction.UNKNOWN
    params: Direction = Direction.UNKNOWN
    reported: str = ""  # the paper's numbers, verbatim-ish: "+1.2% top-1 at +2% FLOPs"


class Provenance(BaseModel):
    paper_id: str  # arXiv id when known, else "sha256:<first 16 hex>"
    title: str = ""
    page: int | None = None  # 1-based page of the quote
    quote: str = ""  # verbatim evidence sentence
    section: str = ""  # the paper section the quote is from, when known
    # "supports": the paper proposes or uses the idea (the quote shows it); "mentions": it only
    # names it (related work, a baseline, a negative result). Reports cite only supporters.
    role: Literal["supports", "mentions"] = "supports"


class ArchEdit(BaseModel):
    """One structured edit of an ArchSpec (the open-ended space).

    ``path`` addresses a field of the spec: ``act``, ``stem.channels``, ``stages[*].block``,
    ``stages[-1].depth``, ``head.dropout``. ``op``:
    - ``set``: field = value
    - ``scale``: field = round(field * value)   (numbers)
    - ``add``: field = field + value             (numbers)
    - ``append_stage`` / ``remove_stage``: value is a stage dict / an index
    """

    op: Literal["set", "scale", "add", "append_stage", "remove_stage"]
    path: str = ""
    value: Any = None


CellOp = Literal[
    "add_conv3x3", "add_conv1x1", "add_avg_pool", "add_skip", "delete_layer",
    "swap_conv1x1_to_conv3x3", "swap_pool_to_conv3x3", "remove_pool",
]


class Idea(BaseModel):
    id: str  # stable slug, e.g. "squeeze-excitation"
    name: str
    category: Category
    description: str
    operator: str = ""  # e.g. "depthwise conv", "SE block", "GELU"
    kernel_sizes: list[int] = Field(default_factory=list)
    ratios: dict[str, float] = Field(default_factory=dict)  # e.g. {"expand": 4, "se": 0.25}
    applies_to: list[Literal["stem", "stage", "head", "block", "cell", "training"]] = Field(
        default_factory=list)
    effect: Effect = Field(default_factory=Effect)
    tasks: list[str] = Field(default_factory=lambda: ["image-classification"])
    input_sizes: list[int] = Field(default_factory=list)  # e.g. [32, 224]; empty = any
    requires: list[str] = Field(default_factory=list)  # idea ids
    conflicts_with: list[str] = Field(default_factory=list)
    code_hint: str = ""
    edits: list[ArchEdit] = Field(default_factory=list)  # offline mutator, open space
    cell_ops: list[CellOp] = Field(default_factory=list)  # offline mutator, NB201 space
    provenance: list[Provenance] = Field(default_factory=list)
    source: Literal["corpus", "offline", "llm"] = "corpus"
    # why the idea has no structured edits (set when ``edits`` and ``cell_ops`` are empty):
    # such ideas are applied by an LLM mutator from the description and the paper's chunks
    apply_note: str = ""

    @property
    def applicable_offline(self) -> bool:
        """The offline mutator can apply it (structured edits or NB201 cell operations)."""
        return bool(self.edits or self.cell_ops)

    @property
    def llm_only(self) -> bool:
        """Only an LLM mutator can apply it (no structured edit expresses it)."""
        return not self.applicable_offline

    @property
    def from_papers(self) -> bool:
        """Derived from an ingested paper (not only the built-in corpus)."""
        return self.source != "corpus" or any(p.quote for p in self.provenance)

    def supporting(self) -> list[Provenance]:
        """Provenance entries whose paper proposes or uses the idea (role "supports")."""
        return [p for p in self.provenance if p.role == "supports"]


class Paper(BaseModel):
    id: str
    title: str = ""
    authors: list[str] = Field(default_factory=list)
    year: int | None = None
    pages: int = 0
    sha256: str
    ingested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    idea_ids: list[str] = Field(default_factory=list)
    path: str = ""
    content_sha256: str = ""  # hash of the text alone (same paper in other bytes)
    arxiv_id: str | None = None


class Chunk(BaseModel):
    id: str  # sha256 of paper id + page + text
    paper_id: str
    page: int
    section: str = ""
    text: str
    appendix: bool = False  # after the reference list

    @staticmethod
    def make_id(paper_id: str, page: int, text: str) -> str:
        return hashlib.sha256(f"{paper_id}|{page}|{text}".encode()).hexdigest()[:32]
