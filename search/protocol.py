"""The small protocol through which search asks for new candidates.

search never imports agent/: agent's offline and LLM mutators implement ``Mutator``.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from pydantic import BaseModel, ConfigDict, Field, model_validator

Operator = Literal["init", "idea", "pareto", "refine", "crossover", "repair", "random", "mutate",
                   "swnas"]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0
    max_prompt_tokens: int = 0  # the largest single prompt (a 4k-context model's limit is per call)
    seconds: float = 0.0  # wall time spent waiting for answers
    trimmed_prompts: int = 0  # mutations whose prompt was cut to fit the context budget

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            cost_usd=self.cost_usd + other.cost_usd,
            max_prompt_tokens=max(self.max_prompt_tokens, other.max_prompt_tokens),
            seconds=self.seconds + other.seconds,
            trimmed_prompts=self.trimmed_prompts + other.trimmed_prompts,
        )


class Constraints(BaseModel):
    """What every child must satisfy (enforced again by the evaluator cascade)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "digits"
    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 8
    max_mmacs: float | None = None  # millions of MACs per image
    max_params: int | None = None


class Goal(BaseModel):
    """A typed Pareto goal: which objective to improve, within which budgets.

    ``budgets`` bound objectives that are minimised (raw units: MACs, parameters, ms) and
    ``floors`` objectives that are maximised (accuracy as a fraction). A mutator improves
    ``improve`` in its ``direction`` while respecting both. ``reason`` (where the parent sits)
    is prose for prompts only."""

    model_config = ConfigDict(extra="forbid")

    improve: str  # objective name, e.g. "val_acc" or "macs"
    direction: Literal["max", "min"]
    budgets: dict[str, float] = Field(default_factory=dict)
    floors: dict[str, float] = Field(default_factory=dict)
    reason: str = ""

    @property
    def adds_capacity(self) -> bool:
        """True when the goal is to gain accuracy (grow), False when it is to cut a cost."""
        return self.direction == "max"

    def describe(self) -> str:
        """The goal as a sentence for an LLM prompt (never parsed back)."""
        from archlore.search.objectives import get_objective

        obj = get_objective(self.improve)
        verb = "gain" if self.direction == "max" else "cut"
        parts = [f"{verb} {obj.name}"]
        for name, bound in self.budgets.items():
            parts.append(f"stay at or under {get_objective(name).display(bound, 4)} of {name}")
        for name, bound in self.floors.items():
            parts.append(f"keep {name} at or above {get_objective(name).display(bound, 2)}")
        text = ", ".join(parts)
        return f"{text} ({self.reason})" if self.reason else text


Verdict = Literal["better", "worse", "same", "failed", "duplicate", "no_candidate"]


class Outcome(BaseModel):
    """What one child of a lineage did: the typed feedback a mutator receives."""

    model_config = ConfigDict(extra="forbid")

    candidate_id: int
    operator: str
    idea_id: str | None = None
    move: str | None = None  # the mutator's named move, when it made one
    verdict: Verdict  # vs the parent on the run's first objective
    status: str | None = None  # evaluation status (ok / rejected / failed / timeout)
    stage: str | None = None
    reason: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)  # the child's, raw units
    delta: dict[str, float] = Field(default_factory=dict)  # child minus parent, raw units
    duplicate_of: int | None = None
    final_loss: float | None = None

    def describe(self) -> str:
        """One line for an LLM prompt or a report (never parsed back)."""
        from archlore.search.objectives import get_objective

        what = f"#{self.candidate_id} {self.operator}"
        if self.idea_id:
            what += f" with idea {self.idea_id}"
        if self.move:
            what += f" (move {self.move})"
        if self.verdict == "duplicate":
            return f"{what}: rejected as a near-duplicate of #{self.duplicate_of}; try a different change"
        if self.verdict == "no_candidate":
            return f"{what}: the mutator produced no candidate ({self.reason[:160]})"
        if self.verdict == "failed":
            return f"{what}: {self.status} at {self.stage}: {self.reason[:200]}"
        shown = ", ".join(f"{k} {get_objective(k).display(v)}" for k, v in self.metrics.items())
        text = f"{what}: {shown}"
        if self.delta:
            change = ", ".join(f"{k} {v * get_objective(k).scale:+.3g} {get_objective(k).unit}"
                               for k, v in self.delta.items())
            text += f" ({self.verdict} than the parent: {change})"
        if self.final_loss is not None:
            text += f"; final train loss {self.final_loss:.3f}"
        return text


class IdeaRecord(BaseModel):
    """How an idea has fared in this run so far (typed; rendered for prompts)."""

    model_config = ConfigDict(extra="forbid")

    idea_id: str
    tries: int = 0
    valid: int = 0
    front_entries: int = 0
    mean_delta: dict[str, float] = Field(default_factory=dict)  # objective -> mean change

    def describe(self) -> str:
        if not self.tries:
            return f"idea {self.idea_id}: not tried yet in this run"
        text = (f"idea {self.idea_id}: {self.tries} tries, {self.valid / self.tries:.0%} valid, "
                f"{self.front_entries} reached the front")
        if self.mean_delta:
            from archlore.search.objectives import get_objective

            text += ", mean change vs parent " + ", ".join(
                f"{k} {v * get_objective(k).scale:+.3g} {get_objective(k).unit}"
                for k, v in self.mean_delta.items())
        return text


class Failure(BaseModel):
    """Why the child to repair failed (typed: the stage decides the repair, not the text)."""

    model_config = ConfigDict(extra="forbid")

    status: str
    stage: str
    reason: str = ""

    def describe(self) -> str:
        return f"{self.status} at {self.stage}: {self.reason}"


class ParentInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate_id: int | None = None
    code: str = ""  # Net source (open space)
    arch: str | None = None  # genotype: ArchSpec JSON, or an NB201 arch string
    evaluation: Evaluation | None = None
    history: list[Outcome] = Field(default_factory=list)  # this lineage's outcomes, newest last


class MutationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: Operator
    space: str = "open"  # the space's name ("open" | "nb201")
    parents: list[ParentInfo] = Field(default_factory=list)  # 2 for crossover
    idea: Idea | None = None
    idea_record: IdeaRecord | None = None  # how ``idea`` fared in this run
    chunks: list[str] = Field(default_factory=list)  # supporting paper text for the idea
    goal: Goal | None = None  # Pareto-aware goal (pareto operator, targeted requests)
    instruction: str = ""  # free text for an LLM only: a user's request, LLMatic's prompt
    objectives: list[str] = Field(default_factory=lambda: ["val_acc", "macs"])
    constraints: Constraints = Field(default_factory=Constraints)
    failure: Failure | None = None  # for repair: why the previous child failed
    seed: int = 0
    temperature: float | None = None
    # operator "swnas": SWNAS's LLM step (answered with MutationResult.space_edits)
    signals: StructuralSignals | None = None
    # cells the run has already scored among the parent's one-edge neighbours (NB201): an
    # answer among them would be a duplicate, an evaluation spent on nothing new
    avoid: list[str] = Field(default_factory=list)
    context_tokens: int | None = None  # prompt budget for this request (None: the mutator's)


MutationStatus = Literal["ok", "no_op", "unsupported", "error"]


class MutationResult(BaseModel):
    """``status``: ``ok`` (a child), ``no_op`` (the change is already in the parent: pick
    another idea or parent), ``unsupported`` (this mutator cannot apply this request, e.g. an
    idea without structured edits offline), ``error`` (it tried and failed; see ``error``)."""

    model_config = ConfigDict(extra="forbid")

    status: MutationStatus = "ok"
    code: str | None = None  # Net source; None if the mutator produced nothing usable
    arch: str | None = None  # structured description when the mutator has one
    mode: Literal["delta", "full", "structured", "offline"] = "offline"
    move: str | None = None  # the named move made (refine repeats/undoes it on feedback)
    prompt: str = ""
    response: str = ""
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None  # why no candidate came out
    notes: str = ""  # what was changed, prose for reports
    # Whether the request's idea is what the child applies (False: e.g. a refine move that
    # ignored it), so ideas are credited only with the children that used them.
    applied_idea: bool = True
    # operator "swnas": the accepted SWNAS space edits (search.swnas.messages.SpaceEdit)
    space_edits: list[SpaceEdit] = Field(default_factory=list)
    # prompt size: the estimate of the prompt sent (tokens) and the parts trimmed to fit
    prompt_tokens_est: int = 0
    prompt_trimmed: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _status_matches(self) -> MutationResult:
        if self.status == "ok" and self.error and not (self.code or self.arch
                                                       or self.space_edits):
            self.status = "error"
        return self


class MutatorExhausted(RuntimeError):
    """The mutator can make no more proposals (e.g. its LLM token or money budget is spent).

    The engine stops asking, finishes what is in flight and ends the run cleanly; the run
    can be resumed later with a larger budget."""


@runtime_checkable
class Mutator(Protocol):
    """Proposes children. ``uses_paper_text``: whether paper chunks in a request are read
    (strategies skip fetching them otherwise). ``unsupported_reason(idea, space)``: None when
    this mutator can apply ``idea`` in ``space``, else why not (e.g. the offline mutator needs
    structured edits); strategies leave such ideas out and report them."""

    name: str
    uses_paper_text: bool

    def mutate(self, request: MutationRequest) -> MutationResult: ...

    def unsupported_reason(self, idea: Idea, space: str) -> str | None: ...


# SWNAS's typed messages import the spaces, which import this module: resolve them last.
from archlore.search.swnas.messages import SpaceEdit, StructuralSignals  # noqa: E402

MutationRequest.model_rebuild()
MutationResult.model_rebuild()
