"""The search-space protocol every space implements and every strategy uses.

A space has a genome type ``G`` (``ArchSpec`` for ``open``, an arch string for ``nb201``).
Strategies never look inside a genome: they get starting points (``seeds``, ``random``),
vary them (``mutate``, ``crossover``), store them as text (``encode`` / ``decode``: what
``Candidate.arch`` holds) and turn them into candidate code (``render``) when the space is
scored from code (``needs_code``). ``describe`` gives descriptors for quality-diversity
archives and reports; ``descriptor_ranges`` their bounds. Every method is deterministic
given its arguments (all randomness from the ``rng`` passed in).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from archlore.search.protocol import Constraints

G = TypeVar("G")


@runtime_checkable
class SearchSpace(Protocol[G]):
    name: str
    needs_code: bool  # candidates are scored from rendered Net code (else from ``arch``)
    default_backend: str  # the evaluation backend this space needs unless told otherwise

    def seeds(self, constraints: Constraints) -> list[G]:
        """Designed starting points (knowledge-driven strategies start here)."""
        ...

    def random(self, rng: np.random.Generator, constraints: Constraints) -> G:
        """A random genome within the constraints."""
        ...

    def mutate(self, genome: G, rng: np.random.Generator, constraints: Constraints) -> G:
        """A small random change (the space's own variation, without knowledge)."""
        ...

    def crossover(self, a: G, b: G, rng: np.random.Generator, constraints: Constraints) -> G: ...

    def render(self, genome: G, constraints: Constraints) -> str:
        """Standalone, trainable ``Net`` source."""
        ...

    def describe(self, genome: G, constraints: Constraints) -> dict[str, Any]:
        """Descriptors, including ``width_depth_ratio`` and ``mmacs`` (estimated)."""
        ...

    def descriptor_ranges(self, constraints: Constraints) -> dict[str, tuple[float, float]]:
        """Bounds of ``width_depth_ratio`` and ``mmacs`` over the space."""
        ...

    def encode(self, genome: G) -> str: ...

    def decode(self, arch: str) -> G:
        """The genome stored as ``arch``; ValueError if it is not one of this space."""
        ...
