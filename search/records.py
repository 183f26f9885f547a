"""Candidate: one proposed architecture, its origin and (once scored) its evaluation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from archlore.evaluator.records import Evaluation
from archlore.search.protocol import Operator, Usage
from pydantic import BaseModel, Field


class Proposal(BaseModel):
    """What a strategy asks to be evaluated. The engine turns it into a Candidate."""

    code: str | None = None  # Net source (open space); None for table-backed spaces
    arch: str | None = None  # genotype: NB201 arch string, or ArchSpec JSON
    parents: list[int] = Field(default_factory=list)  # candidate ids
    idea_id: str | None = None
    operator: Operator = "init"
    mode: Literal["delta", "full", "offline", "none"] = "none"
    prompt: str = ""
    response: str = ""
    usage: Usage = Field(default_factory=Usage)
    notes: str = ""
    error: str | None = None  # the mutator produced nothing usable (recorded as failed)


class Candidate(Proposal):
    id: int  # position in the run, 0-based; also the order strategies are told in
    code_hash: str = ""
    status: Literal["pending", "evaluated", "duplicate"] = "pending"
    evaluation: Evaluation | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    evaluated_at: datetime | None = None

    @staticmethod
    def hash_text(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def valid(self) -> bool:
        return self.evaluation is not None and self.evaluation.status == "ok"
