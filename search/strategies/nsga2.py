"""NSGA-II (Deb et al., 2002) through Optuna's ``NSGAIISampler``, over all the run's
objectives (e.g. validation accuracy x MACs); NAS-Bench-201 space only. An optional extra
(``pip install archlore[optuna]``); the ask/tell plumbing is in ``strategies.optuna_tpe``."""

from __future__ import annotations

from typing import Any

from archlore.search.registry import register_strategy
from archlore.search.strategies.optuna_tpe import OptunaStrategy
from pydantic import BaseModel, ConfigDict, Field


class NSGA2Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    population_size: int = Field(20, ge=2)  # Optuna's default is 50; 20 suits 100-500 queries
    crossover_prob: float = Field(0.9, ge=0, le=1)  # Optuna's default
    mutation_prob: float | None = None  # None: Optuna's 1 / number of parameters
    max_resample: int = Field(10, ge=0)


@register_strategy("nsga2")
class OptunaNSGA2(OptunaStrategy):
    name = "nsga2"
    Options = NSGA2Options
    multi_objective = True

    def make_sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=self.opts.population_size,
            crossover_prob=self.opts.crossover_prob, mutation_prob=self.opts.mutation_prob)


__all__ = ["NSGA2Options", "OptunaNSGA2"]
