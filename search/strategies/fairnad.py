"""FairNAD: fair idea sampling, Pareto-aware multi-type mutation, fine-grained feedback.

Works on any ``SearchSpace`` together with a ``Mutator``, over the run's objectives (the
first is the quality objective, e.g. validation accuracy; the second the cost the Pareto
goals trade against, e.g. MACs or latency):

- the first ``n_seeds`` proposals are the space's seeds, then random architectures;
- afterwards each proposal draws one mutation type from a configurable mix:
  ``idea`` (a front parent + an idea from the fair sampler), ``pareto`` (the goal depends on
  where the parent sits on the front: a cheap parent should gain accuracy within a cost
  budget, an accurate one should cut the cost keeping accuracy -- a typed ``Goal``; a mutator
  that reads paper text also gets an idea whose expected effect fits the goal, drawn fairly;
  the offline mutator meets the goal with one structural grow / shrink move), ``refine`` (continue the most recent lineage that reached
  the front, with its history) and ``crossover`` (two front parents);
- parents come from the current non-dominated set by binary tournament on crowding
  distance, which favours the sparse parts of the front;
- feedback: per-idea statistics (``search.feedback``) drive the sampler and travel to the
  mutator as an ``IdeaRecord``; each lineage keeps a short history of typed ``Outcome``s
  (verdict, move, metric deltas, duplicate_of) handed over as ``ParentInfo.history``; a mutator
  that reads paper text also gets the idea's chunks;
- knowledge, not hand-set weights (NB201 space): a prior over cell operations computed from
  the run's ideas (``search.prior.OpPrior``: their ``cell_ops`` and reported accuracy effects)
  is the mean of a Bayesian linear model of quality (``search.prior.CellModel``) that every
  tell updates, so the prior's weight decays as in-run evidence accumulates; each proposal
  screens ``screen`` answers of a cost-free (offline) mutator and keeps the one a Thompson
  sample of the model ranks highest among cells not yet scored (``screen=1``: no screening);
- exploit (spaces with a one-edge neighbourhood, i.e. NB201): the ``local`` type is
  first-improvement local search from the climb's current cell (the incumbent by the quality
  objective), its unscored neighbours tried in the order of the cell model's posterior mean;
  at a local optimum a new climb starts from a random cell (``local_stuck``);
  ``prior_check``: the prior's ranking of the told cells is compared with their observed
  ranks and the prior keeps only the weight that agreement earns (a misleading prior stops
  pulling after a few tells), and the model's noise is estimated so it explores less as it
  fits;
- feedback that re-weights: ``sampler="bandit"`` (default) draws ideas by Thompson sampling
  on "the child beat its parent" inside a fairness floor (``floor``: that share of draws is
  the paper's fair draw, so every category keeps at least ``floor / n_categories``);
  ``sampler="fair"`` is the paper's fair sampling alone (category uniform, least-tried first);
- ablations as options: ``start="random"`` (no classic start cells), ``prior="flat"``
  (op values 0: evidence only), ``ideas="random"`` (every idea's cell ops replaced by random
  ones, seeded by the run seed; the prior is then computed from those);
- ideas the mutator cannot apply (``Mutator.unsupported_reason``) are left out of the draw
  and counted in ``stats()["unsupported_ideas"]`` with the reason.

Determinism: ``ask`` changes no state but ``asked`` (all randomness from ``self.rng()``), and
``tell`` is the only other mutator of state, so ``replay`` (resume) just counts the ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from archlore.knowledge.schema import Direction, Idea
from archlore.search.feedback import IdeaStats, objective_values, outcome
from archlore.search.pareto import crowding_distance, non_dominated_mask
from archlore.search.prior import CellModel, OpPrior, randomised_ideas
from archlore.search.protocol import Goal, MutationRequest, Outcome, ParentInfo
from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.sampler import BanditIdeaSampler, FairIdeaSampler
from archlore.search.strategies.base import Strategy, StrategyContext
from archlore.search.strategies.fairnad_options import FairNADOptions, MutationMix

OPERATORS = ("idea", "pareto", "refine", "crossover", "model", "local")
KNOWLEDGE_TYPES = ("idea", "pareto", "refine", "crossover")  # driven by the ideas' knowledge
HISTORY = 5  # lineage outcomes handed to the mutator


def effect_of(idea: Idea, field: str | None) -> Direction | None:
    """The idea's expected effect on the quantity an objective is predicted by."""
    return getattr(idea.effect, field, None) if field else None


def load_ideas(knowledge: Any) -> list[Idea]:
    """Ideas from a knowledge store (``.ideas()``), a list of ideas, or the built-in corpus."""
    if knowledge is None:
        from archlore.corpora import load_builtin_ideas  # type: ignore[attr-defined]

        return list(load_builtin_ideas())
    if hasattr(knowledge, "ideas"):
        return list(knowledge.ideas())
    return list(knowledge)


@register_strategy("fairnad")
class FairNAD(Strategy):
    name = "fairnad"
    Options = FairNADOptions

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        if ctx.mutator is None:
            raise ValueError("fairnad needs a mutator (the offline mutator works without an LLM)")
        mix = self.opts.mutation.model_dump()
        if not hasattr(self.space, "neighbours"):
            mix["local"] = 0.0  # no one-edge neighbourhood: the other types, as before
        total = sum(mix.values())
        if total <= 0:
            raise ValueError(f"mutation mix has no positive weight: {mix}")
        self.mix = {k: mix[k] / total for k in OPERATORS}
        self.objectives = ctx.objectives
        self.quality, self.cost = ctx.objectives[0], ctx.objectives[1]
        self.use_chunks = bool(ctx.mutator.uses_paper_text)
        ideas = list(ctx.ideas if ctx.ideas is not None else load_ideas(ctx.knowledge))
        if self.opts.ideas == "random":
            ideas = randomised_ideas(ideas, ctx.seed)
        self.unsupported: dict[str, str] = {}  # idea id -> why this mutator cannot apply it
        for idea in ideas:
            why = ctx.mutator.unsupported_reason(idea, self.space.name)
            if why:
                self.unsupported[idea.id] = why
        usable = [i for i in ideas if i.id not in self.unsupported]
        self.sampler = (BanditIdeaSampler(usable, self.opts.floor)
                        if self.opts.sampler == "bandit" else FairIdeaSampler(usable))
        self.rewards: dict[str, tuple[int, int]] = {}  # idea id -> (children better, children)
        self.op_prior = OpPrior.from_ideas(ideas) if self.opts.prior == "knowledge" else (
            OpPrior.flat())
        self.model = (CellModel(self.op_prior, self.opts.prior_strength,
                                adaptive=self.opts.prior_check)
                      if self.space.name == "nb201" else None)
        self.seen: set[str] = set()  # archs told so far
        self.ranked: list[int] = []  # valid candidates with an arch, best quality first
        self._qual: dict[int, float] = {}
        self.climb: int | None = None  # the `local` climb's current cell
        self.screened = 0
        self._all: list[str] | None = None  # proposals where screening changed the mutator's first answer
        self.idea_stats = IdeaStats()
        self.archive: dict[int, Candidate] = {}
        self.front: list[int] = []
        # tell-time (rung-0) values and evaluations: what a child is compared with, so that a
        # multi-fidelity run never judges it against its parent's longer training
        self.told_values: dict[int, dict[str, float]] = {}
        self.told_eval: dict[int, Any] = {}
        self.history: dict[int, list[Outcome]] = {}
        self.op_counts: dict[str, dict[str, int]] = {}
        self._seeds: list[Any] | None = None
        self._chunks: dict[str, list[str]] = {}

    # -- ask -----------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            rng = self.rng()
            k = self.asked
            self.asked += 1
            out.append(self._propose(k, rng))
        return out

    def replay(self, candidate: Candidate) -> None:
        """Resume: account for a stored proposal without calling the mutator again."""
        self.asked += 1

    def _propose(self, k: int, rng: np.random.Generator) -> Proposal:
        if k < self.opts.n_seeds or not self.front:
            return self._initial(k, rng)
        prop = self._propose_mutation(rng)
        if prop.error and prop.operator in ("pareto", "refine", "crossover"):
            # the mutator could not serve this type here (e.g. nothing fits the budget):
            # spend the evaluation on a fair-idea mutation instead
            fallback = self._propose_mutation(rng, force="idea")
            if not fallback.error:
                return fallback
        return prop

    def _mix(self) -> list[float]:
        """The mutation-type probabilities now: with ``knowledge_floor`` and a checked prior,
        the knowledge-driven types shrink as the evidence contradicts the knowledge."""
        w = [self.mix[o] for o in OPERATORS]
        floor = self.opts.knowledge_floor
        if floor is None or self.model is None or not self.opts.prior_check:
            return w
        f = max(self.model.prior_factor(), floor)
        w = [x * f if o in KNOWLEDGE_TYPES else x
             for o, x in zip(OPERATORS, w, strict=True)]
        return [x / sum(w) for x in w]

    def _propose_mutation(self, rng: np.random.Generator, force: str | None = None) -> Proposal:
        op = force or str(rng.choice(OPERATORS, p=self._mix()))
        if op == "local":
            prop = self._local_pick(rng)
            if prop is not None:
                return prop
            op = "idea"
        if op == "model":
            prop = self._model_pick(rng)
            if prop is not None:
                return prop
            op = "idea"
        if op == "crossover" and len(self.front) < 2:
            op = "idea"
        if op == "refine":
            tip = self._lineage_tip()
            if tip is None:
                op = "idea"
        if op == "crossover":
            a, b = self._tournament(rng, 2)
            return self._mutate(op, [a, b], None, None, rng)
        parent = tip if op == "refine" else self._tournament(rng, 1)[0]
        goal, allowed = None, None
        if op == "pareto":  # an idea whose expected effect fits the goal (a structural
            goal, allowed = self._pareto_goal(parent)  # mutator may meet it with a move instead)
        # A "no-op" idea is never told, so it stays the least tried (most likely) idea of its
        # category: after one, draw again inside the same category, and leave the category
        # only when all its ideas are no-ops -- so each category with an applicable idea keeps
        # an equal share.
        tried: set[str] = set()
        cat: str | None = None
        while True:
            def untried(i: Idea, t: set[str] = tried, c: str | None = cat) -> bool:
                return i.id not in t and (c is None or i.category.value == c)

            idea = None
            if allowed is not None:
                idea = self._draw(rng, lambda i, a=allowed, u=untried: u(i) and a(i))
            idea = idea or self._draw(rng, untried)
            if idea is None and cat is not None:  # the category holds only no-ops here
                cat = None
                continue
            if idea is None and tried:  # every idea is a no-op for this parent
                break
            prop = self._mutate(op, [parent], idea, goal, rng)
            if idea is None or prop.mutation_status not in ("no_op", "unsupported"):
                return prop
            tried.add(idea.id)
            cat = idea.category.value
        # every drawn idea was already in the parent: continue its lineage with a small move
        return self._mutate("refine", [parent], None, None, rng)

    def _draw(self, rng: np.random.Generator, allowed: Callable[[Idea], bool]) -> Idea | None:
        if isinstance(self.sampler, BanditIdeaSampler):
            return self.sampler.draw(rng, self.idea_stats, allowed, self.rewards)
        return self.sampler.draw(rng, self.idea_stats, allowed)

    def _initial(self, k: int, rng: np.random.Generator) -> Proposal:
        c = self.ctx.constraints
        if self._seeds is None:
            self._seeds = list(self.space.seeds(c))
            if self.opts.prior_start and self.model is not None:
                from archlore.search.spaces.nb201 import all_archs

                archs = all_archs()
                best = archs[int(np.argmax(CellModel.score_with(self.model._posterior()[0],
                                                                archs)))]
                self._seeds = [best] + [g for g in self._seeds if g != best]
        start = self.opts.start
        if start == "auto":
            start = "mixed" if self.model is not None else "classic"
        j = k // 2 if start == "mixed" else k  # the index among the classic cells
        classic = start == "classic" or (start == "mixed" and k % 2 == 0)
        if classic and j < len(self._seeds):
            genome, op = self._seeds[j], "init"
        else:
            genome, op = self.space.random(rng, c), "random"
        return self.proposal(genome, operator=op, notes="initial architecture")

    def _mutate(self, op: str, parents: list[int], idea: Idea | None, goal: Goal | None,
                rng: np.random.Generator) -> Proposal:
        req = MutationRequest(
            operator=op, space=self.space.name, parents=[self._parent_info(p) for p in parents],
            idea=idea, idea_record=self.idea_stats.record_of(idea.id) if idea else None,
            chunks=self._idea_chunks(idea), goal=goal, objectives=[o.name for o in self.objectives],
            constraints=self.ctx.constraints, seed=int(rng.integers(2**31)),
            avoid=self._scored_neighbours(parents[0]) if parents and op != "crossover" else [])
        res = self.ctx.mutator.mutate(req)
        res = self._screen(req, res, rng)
        produced = res.code if self.space.needs_code else (res.arch or res.code)
        return Proposal(code=res.code, arch=res.arch, parents=parents,
                        idea_id=idea.id if idea is not None and res.applied_idea else None,
                        operator=op, mode=res.mode, move=res.move,
                        mutation_status=res.status if produced else (
                            res.status if res.status != "ok" else "error"),
                        prompt=res.prompt, response=res.response, usage=res.usage,
                        notes=res.notes,
                        error=None if produced else (res.error or "the mutator returned nothing"))

    def _model_pick(self, rng: np.random.Generator) -> Proposal | None:
        """The unscored cell a Thompson sample of the cell model ranks highest."""
        if self.model is None:
            return None
        if self._all is None:
            from archlore.search.spaces.nb201 import all_archs

            self._all = all_archs()
        w = self.model.sample(rng)
        scores = CellModel.score_with(w, self._all)
        for i in np.argsort(-scores, kind="stable"):
            arch = self._all[int(i)]
            if arch not in self.seen:
                best = max(self.front, key=lambda c: -self.quality.minimised(
                    self._values(c)[self.quality.name]))
                return self.proposal(arch, operator="mutate", parents=[best], move="model",
                                     notes="Thompson sample of the cell model (prior + evidence)")
        return None

    def _local_pick(self, rng: np.random.Generator) -> Proposal | None:
        """First improvement from the climb's current cell (the incumbent, unless a restart
        began a new climb): its unscored neighbour ranked highest by the cell model
        (``local_order``). At a local optimum (every neighbour scored) a new climb starts
        (``local_stuck``): from a random cell, from the model's pick among all unscored
        cells, or (``next``) from the best told cell that still has unscored neighbours."""
        nbrs = getattr(self.space, "neighbours", None)
        if nbrs is None or self.climb is None:
            return None
        w = None
        if self.model is not None and self.opts.local_order != "random":
            w = (self.model.sample(rng) if self.opts.local_order == "thompson"
                 else self.model._posterior()[0])
        order = [self.climb] + ([i for i in self.ranked if i != self.climb]
                                if self.opts.local_stuck == "next" else [])
        for cid in order:
            fresh = [a for a in nbrs(self.archive[cid].arch) if a not in self.seen]
            if not fresh:
                continue
            pick = (fresh[int(rng.integers(len(fresh)))] if w is None
                    else fresh[int(np.argmax(CellModel.score_with(w, fresh)))])
            return self.proposal(pick, operator="mutate", parents=[cid], move="local",
                                 notes="first improvement from the climb's current cell")
        if self.opts.local_stuck == "model":
            prop = self._model_pick(rng)
            if prop is not None:
                return prop.model_copy(update={"move": "restart"})
        for _ in range(100):
            arch = self.space.random(rng, self.ctx.constraints)
            if self.space.encode(arch) not in self.seen:
                return self.proposal(arch, operator="random", move="restart",
                                     notes="local optimum reached: a new climb")
        return None

    def _scored_neighbours(self, cid: int) -> list[str]:
        """The parent's one-edge neighbours the run has already scored (spaces with
        ``neighbours``): what a mutator should not propose again."""
        nbrs = getattr(self.space, "neighbours", None)
        parent = self.archive.get(cid)
        if nbrs is None or parent is None or not parent.arch:
            return []
        return [a for a in nbrs(parent.arch) if a in self.seen]

    def _screen(self, req: MutationRequest, first: Any, rng: np.random.Generator) -> Any:
        """Ask a cost-free mutator for ``screen - 1`` more answers (other seeds) and keep the
        one a Thompson sample of the cell model ranks highest among unscored cells."""
        k = self.opts.screen
        if (self.model is None or k <= 1 or first.status != "ok" or not first.arch
                or first.usage.calls or first.usage.cost_usd):
            return first
        answers = [first]
        for _ in range(k - 1):
            res = self.ctx.mutator.mutate(req.model_copy(update={"seed": int(rng.integers(2**31))}))
            if res.status == "ok" and res.arch:
                answers.append(res)
        w = self.model.sample(rng)
        fresh = [a for a in answers if a.arch not in self.seen]
        if not fresh:
            return first
        scores = CellModel.score_with(w, [a.arch for a in fresh])
        best = fresh[int(np.argmax(scores))]
        self.screened += best is not first
        return best

    def _parent_info(self, cid: int) -> ParentInfo:
        c = self.archive[cid]
        # the parent as it was told (rung 0): the rung its child will be scored and judged at
        return ParentInfo(candidate_id=cid, code=c.code or "", arch=c.arch,
                          evaluation=self.told_eval.get(cid, c.evaluation),
                          history=list(self.history.get(cid, []))[-HISTORY:])

    def _idea_chunks(self, idea: Idea | None) -> list[str]:
        kn = self.ctx.knowledge
        if idea is None or not self.use_chunks or kn is None or not hasattr(kn, "chunks_for"):
            return []
        if idea.id not in self._chunks:
            try:
                self._chunks[idea.id] = [ch.text for ch in kn.chunks_for(idea.id)]
            except (KeyError, ValueError):
                self._chunks[idea.id] = []
        return self._chunks[idea.id]

    # -- selection -----------------------------------------------------------------------------
    def _values(self, cid: int) -> dict[str, float]:
        vals = objective_values(self.archive[cid], self.objectives)
        assert vals is not None  # only valid candidates enter the front
        return vals

    def _points(self, ids: list[int], told: bool = False) -> np.ndarray:
        """Minimised objective values of ``ids``: current (highest rung) or at tell time."""
        vals = [self.told_values[i] if told else self._values(i) for i in ids]
        return np.array([[o.minimised(v[o.name]) for o in self.objectives] for v in vals],
                        dtype=float)

    def _tournament(self, rng: np.random.Generator, n: int) -> list[int]:
        """``n`` distinct front members, each the less crowded of two random ones."""
        pool = list(self.front)
        crowd = crowding_distance(self._points(pool))
        picked: list[int] = []
        for _ in range(n):
            idx = [i for i in range(len(pool)) if pool[i] not in picked]
            a, b = (int(x) for x in rng.choice(idx, size=2, replace=len(idx) < 2))
            win = a if (crowd[a], -pool[a]) >= (crowd[b], -pool[b]) else b
            picked.append(pool[win])
        return picked

    def _cap(self) -> float | None:
        """The run's hard cap on the cost objective, raw units, if it has one."""
        c = self.ctx.constraints
        if self.cost.name == "macs" and c.max_mmacs is not None:
            return c.max_mmacs * 1e6
        if self.cost.name == "params" and c.max_params is not None:
            return float(c.max_params)
        return None

    def _pareto_goal(self, parent: int) -> tuple[Goal, Callable[[Idea], bool]]:
        """The typed goal (and the ideas that fit it) from where ``parent`` sits on the front,
        ordered by the cost objective."""
        q, cost = self.quality, self.cost
        by_cost = sorted(self.front, key=lambda i: self.cost.minimised(self._values(i)[cost.name]))
        pos = by_cost.index(parent)
        vals = self.told_values[parent]  # the floor at the rung the child is scored at
        if pos < len(by_cost) / 2:  # cheap parent: gain quality within a cost budget
            nxt = self._values(by_cost[pos + 1])[cost.name] if pos + 1 < len(by_cost) else None
            budget = min(x for x in (nxt, self._cap(), 2 * vals[cost.name]) if x is not None)
            goal = Goal(improve=q.name, direction=q.direction, budgets={cost.name: budget},
                        reason=f"the parent is among the cheapest on the Pareto front; "
                               f"{q.name} {q.display(vals[q.name], 2)}")
            return goal, lambda i: (effect_of(i, q.effect) == Direction.UP
                                    and effect_of(i, cost.effect) != Direction.UP)
        goal = Goal(improve=cost.name, direction=cost.direction, floors={q.name: vals[q.name]},
                    reason="the parent is among the most accurate on the Pareto front")
        return goal, lambda i: effect_of(i, cost.effect) == Direction.DOWN

    def _lineage_tip(self) -> int | None:
        """Most recent mutated candidate on the front (a lineage worth continuing)."""
        tips = [c for c in self.front if self.archive[c].parents]
        return max(tips) if tips else None

    # -- tell ----------------------------------------------------------------------------------
    def tell(self, candidate: Candidate) -> None:
        c = candidate
        self.archive[c.id] = c
        mine = objective_values(c, self.objectives)
        self.told_eval[c.id] = c.evaluation
        if mine is not None:
            self.told_values[c.id] = dict(mine)
        on_front = False
        if mine is not None:
            ids = self.front + [c.id]
            keep = non_dominated_mask(self._points(ids))
            self.front = [i for i, k in zip(ids, keep, strict=True) if k]
            # the credit "entered the front" at one rung: against the members' tell-time values
            on_front = bool(non_dominated_mask(self._points(ids, told=True))[-1])
        parent = self.archive.get(c.parents[0]) if c.parents else None
        # the parent at the rung the child was told at: a promoted parent's longer training
        # would make every child look worse (multi-fidelity; the same values otherwise)
        theirs = self.told_values.get(parent.id) if parent is not None else None
        if c.status != "duplicate":
            self.idea_stats.record(c.idea_id, mine, theirs, on_front)
            if c.idea_id:
                good, n = self.rewards.get(c.idea_id, (0, 0))
                q = self.quality
                better = (mine is not None and theirs is not None
                          and q.minimised(mine[q.name]) < q.minimised(theirs[q.name]))
                self.rewards[c.idea_id] = (good + int(better), n + 1)
        if c.arch:
            self.seen.add(c.arch)
            if mine is not None:
                key = -self.quality.minimised(mine[self.quality.name])
                best = self._qual[self.ranked[0]] if self.ranked else None
                self._qual[c.id] = key
                self.ranked.append(c.id)
                self.ranked.sort(key=lambda i: (-self._qual[i], i))
                cur = self.climb
                if (cur is None or c.move == "restart" or (best is not None and key > best)
                        or (c.move == "local" and c.parents == [cur]
                            and key > self._qual[cur])):
                    self.climb = c.id  # first improvement (or a new climb, or a new best)
            if mine is not None and self.model is not None:
                self.model.observe(c.arch, -self.quality.minimised(mine[self.quality.name]))
        line = outcome(c, parent, self.objectives, parent_values=theirs)
        if parent is not None:
            self.history.setdefault(parent.id, []).append(line)
        lineage = list(self.history.get(parent.id, []))[-HISTORY:] if parent else []
        self.history[c.id] = [x for x in lineage if x.candidate_id != c.id] + [line]
        st = self.op_counts.setdefault(c.operator, {"told": 0, "valid": 0, "front": 0, "duplicate": 0})
        st["told"] += 1
        st["valid"] += int(mine is not None)
        st["front"] += int(on_front)
        st["duplicate"] += int(c.status == "duplicate")

    def update(self, candidate: Candidate) -> None:
        """Multi-fidelity: ``candidate`` reached a higher rung. The front is rebuilt from every
        told candidate's highest-rung values (a promotion can push a member off it or bring one
        back), so Pareto tournaments draw parents from the highest-rung front. Everything that
        compares a child with its parent or with the front keeps tell-time (rung-0) values:
        idea rewards, front-entry credit, lineage outcomes, the parent and the Pareto goal
        handed to the mutator, and the ``local`` climb's ranking (see ``LocalSearch``)."""
        mine = objective_values(candidate, self.objectives)
        if mine is None or candidate.id not in self.archive:
            return
        self.archive[candidate.id] = candidate
        ids = sorted(i for i, c in self.archive.items()
                     if objective_values(c, self.objectives) is not None)
        keep = non_dominated_mask(self._points(ids))
        self.front = [i for i, k in zip(ids, keep, strict=True) if k]

    def stats(self) -> dict[str, Any]:
        return {"asked": self.asked, "front": list(self.front),
                "categories": self.sampler.categories,
                "idea_stats": self.idea_stats.as_dict(), "operators": self.op_counts,
                "unsupported_ideas": dict(sorted(self.unsupported.items())),
                "idea_rewards": {k: list(v) for k, v in sorted(self.rewards.items())},
                "op_prior": self.op_prior.describe(),
                "model": None if self.model is None else {
                    "observed": self.model.n, "prior_weight": round(self.model.prior_weight(), 4),
                    "op_values": self.model.op_values(), "screened": self.screened}}


__all__ = ["FairNAD", "FairNADOptions", "MutationMix", "load_ideas", "randomised_ideas"]
