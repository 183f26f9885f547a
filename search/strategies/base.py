"""Strategy interface in pyribs' ask/tell spirit.

The engine calls ``ask(n)`` when workers are free and ``tell(candidate)`` once per scored
candidate, in candidate-id order. A strategy must be deterministic given its seed and the
sequence of tells: resume rebuilds it by re-telling the stored candidates, so it keeps no
random state that is not derived from ``(seed, number of proposals made so far)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from archlore.search.protocol import Constraints, Mutator
from archlore.search.records import Candidate, Proposal


@dataclass
class StrategyContext:
    """Everything a strategy may use. Unused fields stay None."""

    space: Any  # a search.spaces space object (open or nb201)
    seed: int = 0
    constraints: Constraints = field(default_factory=Constraints)
    mutator: Mutator | None = None  # agent's offline or LLM mutator
    knowledge: Any = None  # knowledge store (list/sample ideas, chunks for an idea)
    options: dict[str, Any] = field(default_factory=dict)  # strategy-specific settings


class Strategy(ABC):
    name: str = "base"

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx
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

    def stats(self) -> dict[str, Any]:
        """Strategy-specific state for progress views and reports."""
        return {}
