"""FairNAD: fair idea sampling, Pareto-aware multi-type mutation, fine-grained feedback.

Works on any space that offers initial architectures (``seeds(constraints)`` and/or
``random(rng, constraints)`` / ``sample(rng)``) together with a ``Mutator``:

- the first ``n_seeds`` proposals are the space's seeds, then random architectures;
- afterwards each proposal draws one mutation type from a configurable mix:
  ``idea`` (a front parent + an idea from the fair sampler), ``pareto`` (the goal depends on
  where the parent sits on the front: a cheap parent should gain accuracy within the MACs
  budget, an accurate one should cut MACs keeping accuracy; an LLM mutator also gets an idea
  whose reported effect fits the goal, drawn fairly; the offline mutator meets the goal with
  one structural grow / shrink move), ``refine`` (continue the most recent lineage that reached
  the front, with its history) and ``crossover`` (two front parents);
- parents come from the current non-dominated set (val acc up, MACs down) by binary
  tournament on crowding distance, which favours the sparse parts of the front;
- feedback: per-idea statistics (``search.feedback``) drive the sampler and are quoted to the
  mutator; each lineage keeps a short history of outcomes (errors, metrics, duplicates)
  handed over as ``ParentInfo.feedback``; the LLM mutator also gets the idea's paper chunks.

Determinism: ``ask`` changes no state but ``asked`` (all randomness from ``self.rng()``), and
``tell`` is the only other mutator of state, so ``replay`` (resume) just counts the ask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from archlore.knowledge.schema import Direction, Idea
from archlore.search.feedback import IdeaStats, describe_outcome
from archlore.search.pareto import crowding_distance, non_dominated_mask, objectives
from archlore.search.protocol import MutationRequest, ParentInfo
from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.sampler import FairIdeaSampler
from archlore.search.strategies.base import Strategy, StrategyContext

OPERATORS = ("idea", "pareto", "refine", "crossover")
DEFAULT_MIX = {"idea": 0.4, "pareto": 0.3, "refine": 0.15, "crossover": 0.15}
FEEDBACK_LINES = 5

# Pareto-aware goals. The offline mutator reads the leading keyword ("grow" / "shrink") and
# the first "<number> MMACs" as the budget (agent/offline.py), an LLM reads the whole sentence.
GOAL_ACCURACY = "grow"
GOAL_CUT_MACS = "shrink"


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

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        if ctx.mutator is None:
            raise ValueError("fairnad needs a mutator (the offline mutator works without an LLM)")
        opts = ctx.options
        self.space = ctx.space
        self.space_name = str(getattr(ctx.space, "name", "open"))
        self.uses_code = bool(getattr(ctx.space, "needs_code", True))
        self.n_seeds = int(opts.get("n_seeds", 6))
        mix = {k: float(v) for k, v in (opts.get("mutation") or DEFAULT_MIX).items() if k in OPERATORS}
        total = sum(mix.values())
        if total <= 0:
            raise ValueError(f"mutation mix has no positive weight: {mix}")
        self.mix = {k: mix.get(k, 0.0) / total for k in OPERATORS}
        self.offline = offline = getattr(ctx.mutator, "name", "") == "offline"
        self.use_chunks = bool(opts.get("chunks", not offline))
        # the run's own idea list when the engine pins one (resume), else the knowledge store
        ideas = list(opts.get("ideas") or load_ideas(ctx.knowledge))
        if offline:  # the offline mutator can only apply ideas with structured edits
            ideas = [i for i in ideas if (i.cell_ops if self.space_name == "nb201" else i.edits)]
        self.sampler = FairIdeaSampler(ideas)
        self.idea_stats = IdeaStats()
        self.archive: dict[int, Candidate] = {}
        self.front: list[int] = []
        self.feedback: dict[int, list[str]] = {}
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
        if k < self.n_seeds or not self.front:
            return self._initial(k, rng)
        prop = self._propose_mutation(rng)
        if prop.error and prop.operator in ("pareto", "refine", "crossover"):
            # the mutator could not serve this type here (e.g. nothing fits the budget):
            # spend the evaluation on a fair-idea mutation instead
            fallback = self._propose_mutation(rng, force="idea")
            if not fallback.error:
                return fallback
        return prop

    def _propose_mutation(self, rng: np.random.Generator, force: str | None = None) -> Proposal:
        op = force or str(rng.choice(OPERATORS, p=[self.mix[o] for o in OPERATORS]))
        if op == "crossover" and len(self.front) < 2:
            op = "idea"
        if op == "refine":
            tip = self._lineage_tip()
            if tip is None:
                op = "idea"
        if op == "crossover":
            a, b = self._tournament(rng, 2)
            return self._mutate(op, [a, b], None, "", rng)
        parent = tip if op == "refine" else self._tournament(rng, 1)[0]
        instruction, allowed = "", None
        if op == "pareto":
            instruction, allowed = self._pareto_goal(parent)
            if self.offline:  # the offline mutator meets the goal with a grow / shrink move
                return self._mutate(op, [parent], None, instruction, rng)
        # A "no-op" idea is never told, so it stays the least tried (most likely) idea of its
        # category: after one, draw again inside the same category, and leave the category
        # only when all its ideas are no-ops -- so each category with an applicable idea keeps
        # an equal share. No-ops come from the offline mutator only (cheap), so no retry cap.
        tried: set[str] = set()
        cat: str | None = None
        while True:
            def untried(i: Idea, t: set[str] = tried, c: str | None = cat) -> bool:
                return i.id not in t and (c is None or i.category.value == c)

            idea = None
            if allowed is not None:
                idea = self.sampler.draw(rng, self.idea_stats,
                                         lambda i, a=allowed, u=untried: u(i) and a(i))
            idea = idea or self.sampler.draw(rng, self.idea_stats, untried)
            if idea is None and cat is not None:  # the category holds only no-ops here
                cat = None
                continue
            if idea is None and tried:  # every idea is a no-op for this parent
                break
            prop = self._mutate(op, [parent], idea, instruction, rng)
            if idea is None or not (prop.error or "").startswith("no-op"):
                return prop
            tried.add(idea.id)
            cat = idea.category.value
        # every drawn idea was already in the parent: continue its lineage with a small move
        return self._mutate("refine", [parent], None, "", rng)

    def _initial(self, k: int, rng: np.random.Generator) -> Proposal:
        c = self.ctx.constraints
        if self._seeds is None:
            seeds = getattr(self.space, "seeds", None)
            self._seeds = list(seeds(c)) if seeds is not None else []
        if k < len(self._seeds):
            genome, op = self._seeds[k], "init"
        elif hasattr(self.space, "random"):
            genome, op = self.space.random(rng, c), "random"
        else:
            genome, op = self.space.sample(rng), "random"
        if isinstance(genome, str):  # table space: an arch string
            code = self.space.render(genome) if self.uses_code else None
            return Proposal(code=code, arch=genome, operator=op, notes="initial architecture")
        return Proposal(code=self.space.render(genome, c), arch=genome.to_json(), operator=op,
                        notes=f"initial architecture {getattr(genome, 'name', '')}".strip())

    def _mutate(self, op: str, parents: list[int], idea: Idea | None, instruction: str,
                rng: np.random.Generator) -> Proposal:
        infos = [self._parent_info(p, idea) for p in parents]
        req = MutationRequest(operator=op, space=self.space_name, parents=infos, idea=idea,
                              chunks=self._idea_chunks(idea), instruction=instruction,
                              constraints=self.ctx.constraints, seed=int(rng.integers(2**31)))
        res = self.ctx.mutator.mutate(req)
        produced = res.code if self.uses_code else (res.arch or res.code)
        return Proposal(code=res.code, arch=res.arch, parents=parents,
                        idea_id=idea.id if idea else None, operator=op, mode=res.mode,
                        prompt=res.prompt, response=res.response, usage=res.usage,
                        notes=((instruction + "; ") if instruction else "") + res.notes,
                        error=None if produced else (res.error or "the mutator returned nothing"))

    def _parent_info(self, cid: int, idea: Idea | None) -> ParentInfo:
        c = self.archive[cid]
        fb = list(self.feedback.get(cid, []))[-FEEDBACK_LINES:]  # newest last
        if idea is not None:  # how the idea fared in this run, ahead of the lineage's history
            fb.insert(0, self.idea_stats.summary(idea.id))
        return ParentInfo(candidate_id=cid, code=c.code or "", arch=c.arch, evaluation=c.evaluation,
                          feedback=fb)

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
    def _metrics(self, cid: int) -> tuple[float, float]:
        ev = self.archive[cid].evaluation
        return ev.val_acc, ev.macs / 1e6

    def _tournament(self, rng: np.random.Generator, n: int) -> list[int]:
        """``n`` distinct front members, each the less crowded of two random ones."""
        pool = list(self.front)
        acc, mm = zip(*(self._metrics(c) for c in pool), strict=True)
        crowd = crowding_distance(objectives(acc, mm))
        picked: list[int] = []
        for _ in range(n):
            idx = [i for i in range(len(pool)) if pool[i] not in picked]
            a, b = (int(x) for x in rng.choice(idx, size=2, replace=len(idx) < 2))
            win = a if (crowd[a], -pool[a]) >= (crowd[b], -pool[b]) else b
            picked.append(pool[win])
        return picked

    def _pareto_goal(self, parent: int):
        """(instruction, idea filter) from where ``parent`` sits on the front."""
        by_macs = sorted(self.front, key=lambda c: self._metrics(c)[1])
        pos = by_macs.index(parent)
        acc, mm = self._metrics(parent)
        cap = self.ctx.constraints.max_mmacs
        if pos < len(by_macs) / 2:  # cheap parent
            nxt = self._metrics(by_macs[pos + 1])[1] if pos + 1 < len(by_macs) else None
            budget = min(x for x in (nxt, cap, 2 * mm) if x is not None)
            text = (f"{GOAL_ACCURACY}: gain accuracy while staying under {budget:.4g} MMACs per "
                    f"image (the parent is among the cheapest on the Pareto front; val acc "
                    f"{100 * acc:.2f}%)")
            return text, lambda i: i.effect.accuracy == Direction.UP and i.effect.macs != Direction.UP
        text = (f"{GOAL_CUT_MACS}: cut MACs keeping accuracy near {100 * acc:.2f}% (the parent is "
                f"among the most accurate on the Pareto front)")
        return text, lambda i: i.effect.macs == Direction.DOWN

    def _lineage_tip(self) -> int | None:
        """Most recent mutated candidate on the front (a lineage worth continuing)."""
        tips = [c for c in self.front if self.archive[c].parents]
        return max(tips) if tips else None

    # -- tell ----------------------------------------------------------------------------------
    def tell(self, candidate: Candidate) -> None:
        c = candidate
        self.archive[c.id] = c
        ev = c.evaluation if c.status != "duplicate" else None
        on_front = False
        if ev is not None and ev.ok and ev.val_acc is not None and ev.macs is not None:
            ids = self.front + [c.id]
            keep = non_dominated_mask(objectives(*zip(*(self._metrics(i) for i in ids), strict=True)))
            self.front = [i for i, k in zip(ids, keep, strict=True) if k]
            on_front = bool(keep[-1])
        parent = self.archive.get(c.parents[0]) if c.parents else None
        parent_ev = parent.evaluation if parent is not None else None
        if c.status != "duplicate":
            self.idea_stats.record(c.idea_id, ev, parent_ev, on_front)
        dup = _duplicate_of(c)
        line = describe_outcome(c.id, c.operator, c.idea_id, ev if c.status != "duplicate" else None,
                                parent_ev, duplicate_of=dup if c.status == "duplicate" else None,
                                notes=c.notes)
        if parent is not None:
            self.feedback.setdefault(parent.id, []).append(line)
        history = list(self.feedback.get(parent.id, []))[-FEEDBACK_LINES:] if parent else []
        self.feedback[c.id] = [x for x in history if x != line] + [line]
        st = self.op_counts.setdefault(c.operator, {"told": 0, "valid": 0, "front": 0, "duplicate": 0})
        st["told"] += 1
        st["valid"] += int(ev is not None and ev.ok)
        st["front"] += int(on_front)
        st["duplicate"] += int(c.status == "duplicate")

    def stats(self) -> dict[str, Any]:
        return {"asked": self.asked, "front": list(self.front),
                "categories": self.sampler.categories,
                "idea_stats": self.idea_stats.as_dict(), "operators": self.op_counts}


def _duplicate_of(c: Candidate) -> int | None:
    """The engine notes ``[near-duplicate of #N]``; read N back for the feedback line."""
    marker = "near-duplicate of #"
    if marker not in c.notes:
        return None
    tail = c.notes.split(marker, 1)[1]
    digits = "".join(ch for ch in tail if ch.isdigit() or ch == "]").split("]")[0]
    return int(digits) if digits else None


__all__ = ["FairNAD", "GOAL_ACCURACY", "GOAL_CUT_MACS", "load_ideas"]
