"""SWNAS: differentiable search on the NAS-Bench-201 cell with synergistic (edge x node)
weights and an advisor step (rule-based or LLM) that edits the space.

Modules: :mod:`.supernet` (mixed-op supernet), :mod:`.darts` (first-order DARTS loop),
:mod:`.importance` (node / op perturbation signals), :mod:`.discretize` (argmax, DARTS-PT,
synergistic), :mod:`.messages` (typed signals, edits, settings, result), :mod:`.advisor`
(rule-based edits), :mod:`.strategy` (the ``"swnas"`` engine strategy). See docs/swnas.md.
Importing this package or :mod:`.strategy` does not import torch (the search does).
"""

from archlore.search.swnas.advisor import advise
from archlore.search.swnas.messages import (
    AddNode,
    AdvisorAnswer,
    MaskOp,
    PreferOp,
    SearchResult,
    SearchSettings,
    SpaceEdit,
    StructuralSignals,
    apply_edits,
    render_signals,
    validate_edits,
)

__all__ = ["AddNode", "AdvisorAnswer", "MaskOp", "PreferOp", "SearchResult", "SearchSettings",
           "SpaceEdit", "StructuralSignals", "advise", "apply_edits", "render_signals",
           "validate_edits"]
