"""The small protocol through which search asks for new candidates.

search never imports agent/: agent's offline and LLM mutators implement ``Mutator``.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from pydantic import BaseModel, Field

Operator = Literal["init", "idea", "pareto", "refine", "crossover", "repair", "random", "mutate"]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class Constraints(BaseModel):
    """What every child must satisfy (enforced again by the evaluator cascade)."""

    dataset: str = "digits"
    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 8
    max_mmacs: float | None = None  # millions of MACs per image
    max_params: int | None = None


class ParentInfo(BaseModel):
    candidate_id: int | None = None
    code: str = ""  # Net source (open space)
    arch: str | None = None  # structured description: ArchSpec JSON, or an NB201 arch string
    evaluation: Evaluation | None = None
    feedback: list[str] = Field(default_factory=list)  # lineage history, newest last


class MutationRequest(BaseModel):
    operator: Operator
    space: str = "open"  # "open" | "nb201"
    parents: list[ParentInfo] = Field(default_factory=list)  # 2 for crossover
    idea: Idea | None = None
    chunks: list[str] = Field(default_factory=list)  # supporting paper text for the idea
    instruction: str = ""  # Pareto-aware goal, or the user's targeted request
    constraints: Constraints = Field(default_factory=Constraints)
    error: str | None = None  # for repair: why the previous child failed
    seed: int = 0
    temperature: float | None = None


class MutationResult(BaseModel):
    code: str | None = None  # Net source; None if the mutator produced nothing usable
    arch: str | None = None  # structured description when the mutator has one
    mode: Literal["delta", "full", "offline"] = "offline"
    prompt: str = ""
    response: str = ""
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None  # why no candidate came out
    notes: str = ""  # what was changed, for feedback and reports


class MutatorExhausted(RuntimeError):
    """The mutator can make no more proposals (e.g. its LLM token or money budget is spent).

    The engine stops asking, finishes what is in flight and ends the run cleanly; the run
    can be resumed later with a larger budget."""


@runtime_checkable
class Mutator(Protocol):
    name: str

    def mutate(self, request: MutationRequest) -> MutationResult: ...
