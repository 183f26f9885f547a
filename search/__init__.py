"""The search loop: strategies (FairNAD, baselines), engine, run store, reports."""

from archlore.search.protocol import (
    Constraints,
    MutationRequest,
    MutationResult,
    Mutator,
    ParentInfo,
    Usage,
)
from archlore.search.records import Candidate, Proposal
from archlore.search.registry import list_spaces, list_strategies, register_space, register_strategy

__all__ = [
    "Candidate", "Constraints", "MutationRequest", "MutationResult", "Mutator", "ParentInfo",
    "Proposal", "Usage", "list_spaces", "list_strategies", "register_space", "register_strategy",
]
