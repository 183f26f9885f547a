"""FairNAD's options: the mutation-type mix and the strategy's settings, each default beside
its reason (see ``search.strategies.fairnad`` for what they do; tuning record:
docs/nb201.md)."""

from __future__ import annotations

from typing import Literal

from archlore.search.prior import DEFAULT_STRENGTH
from pydantic import BaseModel, ConfigDict, Field


class MutationMix(BaseModel):
    """Relative weights of FairNAD's mutation types (normalised at use)."""

    model_config = ConfigDict(extra="forbid")

    idea: float = Field(0.4, ge=0)  # fair-idea mutation of a front parent
    pareto: float = Field(0.3, ge=0)  # goal depends on where the parent sits on the front
    refine: float = Field(0.15, ge=0)  # continue the most promising lineage
    crossover: float = Field(0.15, ge=0)
    # the cell the model's Thompson sample ranks highest among all unscored cells (spaces
    # that can be enumerated, i.e. NB201, with a cell model; elsewhere it falls back to idea)
    model: float = Field(0.0, ge=0)
    # exploit: first-improvement move from the incumbent (the best cell on the quality
    # objective): its unscored one-edge neighbour the cell model ranks highest (spaces with
    # ``neighbours``; elsewhere it falls back to idea)
    # (12.0: 12 of 13 proposals with the defaults above, so on NB201 FairNAD is mostly a
    # model-ordered climb with the other types as its exploration; chosen on held-out seeds
    # 100-119 in session 6, was 3.0, docs/nb201.md. Only NB201 has ``neighbours``, so the
    # open space's mix does not change)
    local: float = Field(12.0, ge=0)


class FairNADOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_seeds: int = Field(6, ge=0)  # initial candidates (the space's seeds, then random)
    mutation: MutationMix = Field(default_factory=MutationMix)
    sampler: Literal["fair", "bandit"] = "bandit"  # "fair": the paper's sampling alone
    floor: float = Field(0.5, ge=0, le=1)  # bandit: share of draws that are fair draws
    # initial cells: the space's seeds, random cells, or both in turn ("mixed": a prior that
    # misleads on this task shows at once, as classic cells losing to random ones). "auto":
    # "mixed" where the run has a prior cell model to check against that evidence (NB201),
    # "classic" elsewhere (chosen on held-out seeds 100-119, docs/nb201.md)
    start: Literal["auto", "classic", "random", "mixed"] = "auto"
    prior: Literal["knowledge", "flat"] = "knowledge"  # op prior from the ideas, or all 0
    prior_strength: float = Field(DEFAULT_STRENGTH, gt=0)  # pseudo-observations per coefficient
    ideas: Literal["corpus", "random"] = "corpus"  # ablation: random cell ops for every idea
    screen: int = Field(8, ge=1)  # cost-free mutator answers screened per proposal (NB201)
    # NB201: the first proposal is the prior's own best cell (the cell model's mean argmax
    # before any evidence), then the start cells
    prior_start: bool = False
    # the prior's ranking is checked against the evidence (rank correlation) and keeps only
    # the weight it earns; the model's noise is estimated, so exploration shrinks as it fits
    prior_check: bool = True
    local_order: Literal["mean", "thompson", "random"] = "mean"  # neighbour order of `local`
    # `local` at a local optimum (every neighbour of the incumbent scored): climb on from the
    # best cell that still has unscored neighbours, or jump to the model's pick
    local_stuck: Literal["random", "model", "next"] = "random"
    # with a checked prior: the knowledge-driven types (idea, pareto, refine, crossover) keep
    # the share the prior's agreement with the evidence earns, at least this fraction of their
    # weight (None: a fixed mix)
    knowledge_floor: float | None = Field(None, ge=0, le=1)
