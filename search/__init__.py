"""The search loop: strategies (FairNAD, baselines), engine, run store, reports."""

from search.protocol import (
    Constraints,
    MutationRequest,
    MutationResult,
    Mutator,
    ParentInfo,
    Usage,
)
from search.records import Candidate, Proposal
from search.registry import list_spaces, list_strategies, register_space, register_strategy

__all__ = [
    "Candidate", "Constraints", "MutationRequest", "MutationResult", "Mutator", "ParentInfo",
    "Proposal", "Usage", "list_spaces", "list_strategies", "register_space", "register_strategy",
]
