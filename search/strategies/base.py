"""Strategy interface in pyribs' ask/tell spirit.

The engine calls ``ask(n)`` when evaluation slots are free and ``tell(candidate)`` once per
scored candidate, in candidate-id order; in a multi-fidelity run ``tell`` carries the rung-0
result and ``update(candidate)`` each later, higher-rung result of the same candidate. A strategy must be deterministic given its seed and
the sequence of tells: resume rebuilds it by re-telling the stored candidates, so it keeps no
random state that is not derived from ``(seed, number of proposals made so far)``.

A strategy sees its space only through ``search.spaces.base.SearchSpace`` and its mutator only
through the typed messages of ``search.protocol``. Its settings are a pydantic model, the
class attribute ``Options`` (validated from ``SearchConfig.options``; unknown keys are an
error), registered with the strategy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from archlore.knowledge.schema import Idea
from archlore.search.objectives import Objective, get_objectives
from archlore.search.protocol import Constraints, Mutator
from archlore.search.records import Candidate, Proposal
from archlore.search.spaces.base import SearchSpace
from pydantic import BaseModel, ConfigDict


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class StrategyContext:
    """Everything a strategy may use. Unused fields stay None."""

    space: SearchSpace
    seed: int = 0
    constraints: Constraints = field(default_factory=Constraints)
    mutator: Mutator | None = None  # agent's offline or LLM mutator
    knowledge: Any = None  # knowledge store (chunks for an idea), or None
    ideas: list[Idea] | None = None  # the run's ideas (pinned in the run store on resume)
    objectives: list[Objective] = field(
        default_factory=lambda: get_objectives(["val_acc", "macs"]))
    options: dict[str, Any] = field(default_factory=dict)  # validated by Strategy.Options
    data_root: str | None = None  # the run's dataset directory (strategies that train)


class Strategy(ABC):
    name: str = "base"
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
        self.space = ctx.space
        self.opts = self.Options.model_validate(ctx.options)
        self.asked = 0  # proposals made so far; seeds the per-proposal RNG

    def rng(self) -> np.random.Generator:
        """A fresh generator for the next proposal: deterministic across resume."""
        return np.random.default_rng([self.ctx.seed, self.asked])

    @abstractmethod
    def ask(self, n: int) -> list[Proposal]:
        """Up to ``n`` new proposals (fewer if the strategy must wait for results)."""

    @abstractmethod
    def tell(self, candidate: Candidate) -> None:
        """One scored (or duplicate-rejected) candidate, in id order."""

    def update(self, candidate: Candidate) -> None:
        """Multi-fidelity: ``candidate``, told before, now has a result at a higher rung
        (``candidate.evaluation``; ``metrics['rung']`` and ``metrics['fidelity_epochs']`` say
        which) that replaces the one it was told with. Called by the engine once per valid
        promotion result, in the order the results arrive. A strategy that keeps its own copy
        of a score (a population's fitness, a best-so-far) must replace it here, so its
        feedback is the highest rung each candidate reached and never a stale lower one; the
        default does nothing, which is right for strategies that keep no scores or only read
        the ``Candidate`` objects they were told (the engine updates those in place)."""
        return None

    def replay(self, candidate: Candidate) -> None:
        """Resume: account for a stored proposal without proposing it again. The default
        re-asks and discards (right for strategies whose ``ask`` changes state); strategies
        whose ``ask`` only counts override it to skip the mutator call."""
        self.ask(1)

    def stats(self) -> dict[str, Any]:
        """Strategy-specific state for progress views and reports."""
        return {}

    # helpers ---------------------------------------------------------------------------------
    def proposal(self, genome: Any, **fields: Any) -> Proposal:
        """A Proposal carrying ``genome`` as text, plus its rendered code when the space is
        scored from code."""
        c = self.ctx.constraints
        code = self.space.render(genome, c) if self.space.needs_code else None
        return Proposal(arch=self.space.encode(genome), code=code, **fields)

    def values(self, candidate: Candidate) -> list[float] | None:
        """The run's objective values of a valid candidate (raw units), else None."""
        ev = candidate.evaluation
        if candidate.status == "duplicate" or ev is None or not ev.ok:
            return None
        vals = [o.value(ev) for o in self.ctx.objectives]
        return None if any(v is None for v in vals) else [float(v) for v in vals]  # type: ignore[arg-type]

    def minimised(self, values: list[float]) -> list[float]:
        return [o.minimised(v) for o, v in zip(self.ctx.objectives, values, strict=True)]
