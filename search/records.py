"""Candidate: one proposed architecture, its origin and (once scored) its evaluation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from archlore.evaluator.records import Evaluation
from archlore.search.protocol import MutationStatus, Operator, Usage
from pydantic import BaseModel, Field


class Proposal(BaseModel):
    """What a strategy asks to be evaluated. The engine turns it into a Candidate."""

    code: str | None = None  # Net source (open space); None for table-backed spaces
    arch: str | None = None  # genotype: NB201 arch string, or ArchSpec JSON
    parents: list[int] = Field(default_factory=list)  # candidate ids
    idea_id: str | None = None
    operator: Operator = "init"
    mode: Literal["delta", "full", "structured", "offline", "none"] = "none"
    move: str | None = None  # the mutator's named move (typed feedback for refine)
    mutation_status: MutationStatus = "ok"
    prompt: str = ""
    response: str = ""
    usage: Usage = Field(default_factory=Usage)
    notes: str = ""  # prose for reports; never parsed
    error: str | None = None  # the mutator produced nothing usable (recorded as failed)
    # What the strategy must remember about this proposal to rebuild its state on resume
    # (validated by the strategy's own pydantic model, e.g. LLMatic's generation and prompt).
    strategy_data: dict[str, Any] = Field(default_factory=dict)


class Candidate(Proposal):
    id: int  # position in the run, 0-based; also the order strategies are told in
    code_hash: str = ""
    status: Literal["pending", "evaluated", "duplicate"] = "pending"
    duplicate_of: int | None = None  # the stored candidate this one nearly duplicates
    evaluation: Evaluation | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    evaluated_at: datetime | None = None

    @staticmethod
    def hash_text(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def valid(self) -> bool:
        return self.evaluation is not None and self.evaluation.status == "ok"
