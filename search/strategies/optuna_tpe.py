"""Optuna's samplers as strategies (an optional extra: ``pip install archlore[optuna]``).

The NAS-Bench-201 cell is six categorical parameters (one per edge, the five operations);
each proposal is one ``study.ask`` over those distributions, each tell the matching
``study.tell`` with the run's objective values (failures are told as failed trials). A
sampled cell that was already scored is told its known value at once and the sampler asked
again (at most ``max_resample`` times, default 10: each ask costs O(trials)); if it still
proposes scored cells, the proposal is a random unscored one-edge neighbour of its last
sample (drawn from ``self.rng()``), told to the study as that trial's parameters -- so a query
is never spent on a duplicate.

``tpe``: ``TPESampler`` (single-objective on the run's first objective by default;
``multi_objective=True`` uses all the run's objectives, MOTPE). ``nsga2`` (module
``nsga2``): ``NSGAIISampler`` over all the run's objectives.

Only the ``nb201`` space has a categorical encoding here; on any other space these strategies
raise a clear error. Determinism: the samplers are seeded with the run seed and the study is
rebuilt by the same ask/tell sequence on resume (the default ``replay`` re-asks).
"""

from __future__ import annotations

import warnings
from typing import Any

from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext
from pydantic import BaseModel, ConfigDict, Field


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("this strategy needs Optuna: pip install 'archlore[optuna]' "
                          "(or pip install 'optuna>=3.5')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaStrategy(Strategy):
    """Shared ask/tell plumbing; subclasses build the sampler and pick the objectives."""

    multi_objective = False

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        if self.space.name != "nb201":
            raise ValueError(f"the {self.name} strategy supports the nb201 space only (six "
                             f"categorical edges), not {self.space.name!r}")
        optuna = _optuna()
        from archlore.search.spaces.nb201 import EDGES, OPS

        self.keys = [f"edge_{i}_{j}" for i, j in EDGES]
        self.dists = {k: optuna.distributions.CategoricalDistribution(OPS) for k in self.keys}
        objs = ctx.objectives if self._multi() else ctx.objectives[:1]
        self.objs = objs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.study = optuna.create_study(
                sampler=self.make_sampler(optuna, ctx.seed),
                directions=["maximize" if o.maximise else "minimize" for o in objs])
        self.trial_state = optuna.trial.TrialState
        self.known: dict[str, list[float] | None] = {}  # arch -> told values (None: failed)
        self.pending: dict[str, list[Any]] = {}  # arch -> trials asked, not yet told
        self.resampled = 0

    def _multi(self) -> bool:
        return self.multi_objective

    def make_sampler(self, optuna: Any, seed: int) -> Any:
        raise NotImplementedError

    def _arch(self, trial: Any) -> str:
        from archlore.search.spaces.nb201 import format_arch

        return format_arch([trial.params[k] for k in self.keys])

    def _tell(self, trial: Any, values: list[float] | None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if values is None:
                self.study.tell(trial, state=self.trial_state.FAIL)
            else:
                self.study.tell(trial, values if len(values) > 1 else values[0])

    def _enqueue(self, arch: str) -> Any:
        """A trial with fixed parameters (the cell ``arch``)."""
        from archlore.search.spaces.nb201 import parse_arch

        params = dict(zip(self.keys, parse_arch(arch), strict=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.study.enqueue_trial(params)
            return self.study.ask(self.dists)

    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = self.study.ask(self.dists)
            arch = self._arch(trial)
            tries = 0
            while arch in self.known and tries < self.opts.max_resample:
                self._tell(trial, self.known[arch])  # its value is known: no query spent
                self.resampled += 1
                tries += 1
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trial = self.study.ask(self.dists)
                arch = self._arch(trial)
            if arch in self.known:  # still a scored cell: an unscored neighbour instead
                from archlore.search.spaces.nb201 import format_arch, neighbours, parse_arch

                fresh = [format_arch(c) for c in neighbours(parse_arch(arch))
                         if format_arch(c) not in self.known]
                if fresh:
                    self._tell(trial, self.known[arch])
                    arch = fresh[int(self.rng().integers(len(fresh)))]
                    trial = self._enqueue(arch)
            self.pending.setdefault(arch, []).append(trial)
            self.asked += 1
            out.append(self.proposal(arch, operator="random" if self.asked <= 1 else "mutate"))
        return out

    def tell(self, candidate: Candidate) -> None:
        arch = candidate.arch
        trials = self.pending.get(arch or "")
        if not trials:
            return
        trial = trials.pop(0)
        if not trials:
            del self.pending[arch]  # type: ignore[arg-type]
        vals = self.values(candidate)
        if candidate.status == "duplicate":
            known = self.known.get(arch or "")
            self._tell(trial, known)
            return
        chosen = None if vals is None else [
            v for o, v in zip(self.ctx.objectives, vals, strict=True) if o in self.objs]
        self.known[arch or ""] = chosen
        self._tell(trial, chosen)

    def stats(self) -> dict[str, Any]:
        return {"trials": len(self.study.trials), "resampled": self.resampled,
                "objectives": [o.name for o in self.objs]}


class TPEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_startup_trials: int = Field(10, ge=1)  # Optuna's default
    multivariate: bool = False
    multi_objective: bool = False  # True: all the run's objectives (MOTPE)
    max_resample: int = Field(10, ge=0)


@register_strategy("tpe")
class OptunaTPE(OptunaStrategy):
    name = "tpe"
    Options = TPEOptions

    def _multi(self) -> bool:
        return bool(self.opts.multi_objective)

    def make_sampler(self, optuna: Any, seed: int) -> Any:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.opts.n_startup_trials,
                                          multivariate=self.opts.multivariate)


__all__ = ["OptunaStrategy", "OptunaTPE", "TPEOptions"]
