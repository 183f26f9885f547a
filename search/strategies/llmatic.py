"""LLMatic (Nasir et al., 2023): LLM code mutation + quality-diversity over two archives.

- **network archive** (CVT-MAP-Elites, pyribs ``CVTArchive``): elites by validation accuracy,
  descriptors = (width-to-depth ratio, MACs), both normalised to [0, 1];
- **prompt archive** (CVT-MAP-Elites): prompt individuals (prompt id, temperature), objective =
  the prompt's collective fitness (+1 each time a child beat the previous generation's best),
  each cell carrying a curiosity score: +1 when its child entered the network archive, -0.5 when
  not, -1 when the child was untrainable;
- proposals in generations of ``batch``: first ``initial`` random networks, then per proposal
  crossover (p=0.3: a random elite and its nearest elite) or mutation (p=0.7: a random elite,
  with the most curious prompt individual for half the batch and a random prompt for the
  other half; half the batch jitters the temperature by U(-0.1, 0.1));
- temperature mutation: +0.05 after a child at least as good as the previous generation's
  best, -0.05 otherwise (clipped to [0, 1]); the mutated individual is offered to the archive.

Mutations go through ``ctx.mutator`` (offline or LLM); the prompt is both the request's
``instruction`` and, for NB201, an idea whose ``cell_ops`` the offline mutator applies. Without
a mutator the space's own random mutation stands in. What the strategy needs to remember about
a proposal (generation, prompt, temperature, prompt-archive cell) travels in the typed
``Proposal.strategy_data`` (``LLMaticTag``), stored with the candidate, so re-telling stored
candidates on resume rebuilds the same state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from archlore.knowledge.schema import Category, Idea
from archlore.search.protocol import MutationRequest, ParentInfo
from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext
from pydantic import BaseModel, ConfigDict, Field

# LLMatic's NAS-Bench-201 prompts (paper, App. A) and the cell ops they mean.
NB201_PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Add ReLU, 3x3 convolutional layer and Batch normalization layer to improve the above network",
     ("add_conv3x3",)),
    ("Add ReLU, 1x1 convolutional layer and Batch normalization layer to improve the above network",
     ("add_conv1x1",)),
    ("Delete a layer to improve the above network", ("delete_layer",)),
    ("Add 3x3 average pooling layer to improve the above network", ("add_avg_pool",)),
    ("Add skip connection to improve the above network", ("add_skip",)),
    ("Delete a layer to improve the above network and add ReLU, 3x3 convolutional layer and "
     "Batch normalization layer", ("delete_layer", "add_conv3x3")),
    ("Delete a layer to improve the above network and add ReLU, 1x1 convolutional layer and "
     "Batch normalization layer", ("delete_layer", "add_conv1x1")),
    ("Delete a layer to improve the above network and add 3x3 average pooling layer",
     ("delete_layer", "add_avg_pool")),
    ("Delete a layer to improve the above network and add skip connection",
     ("delete_layer", "add_skip")),
)
# LLMatic's general prompts (paper, App. A), for the open-ended space.
OPEN_PROMPTS: tuple[str, ...] = tuple(p + " to improve the above network" if not p.startswith(
    "Improve") else p for p in (
    "Add a layer", "Delete a layer", "Improve the above network",
    "Improve the above network by reducing the size drastically",
    "Improve the above network by increasing the size drastically",
    "Add fully connected layer", "Add convolutional layer", "Add pooling layer",
    "Add residual connection", "Add multiple residual connections", "Add dropout layer",
    "Add normalization layer", "Add recurrent layer"))
CROSSOVER_PROMPT = ("Combine the above two neural networks and create a third neural network "
                    "class that also inherits from nn.Module and performs better than the above "
                    "two neural networks")


class LLMaticOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch: int = Field(20, ge=1)  # generation size
    initial: int = Field(10, ge=1)  # random networks before mutation starts
    p_mutation: float = Field(0.7, ge=0, le=1)
    temperature: float = Field(0.6, ge=0, le=1)  # initial
    niches: int = Field(10, ge=1)  # per descriptor dimension
    wd_range: tuple[float, float] | None = None  # width/depth bounds; None = the space's
    mmacs_range: tuple[float, float] | None = None  # MACs bounds (millions, log scale)


class LLMaticTag(BaseModel):
    """What LLMatic remembers about one proposal (``Proposal.strategy_data``)."""

    generation: int
    prompt_id: int = -1  # -1: a random initial network or a crossover
    temperature: float = 0.0
    cell: int = -1  # the prompt-archive cell the prompt came from (-1: none)


@register_strategy("llmatic")
class LLMatic(Strategy):
    name = "llmatic"
    Options = LLMaticOptions

    def __init__(self, ctx: StrategyContext) -> None:
        from ribs.archives import CVTArchive  # lazy: pyribs pulls scipy/sklearn

        super().__init__(ctx)
        o = self.opts
        self.batch, self.initial, self.p_mutation = o.batch, o.initial, o.p_mutation
        self.t0 = o.temperature
        niches = o.niches ** 2
        self.space_name = ctx.space.name
        self.prompts = ([p for p, _ in NB201_PROMPTS] if self.space_name == "nb201"
                        else list(OPEN_PROMPTS))
        ranges = ctx.space.descriptor_ranges(ctx.constraints)
        self.wd_range = tuple(o.wd_range or ranges["width_depth_ratio"])
        self.mmacs_range = tuple(o.mmacs_range or ranges["mmacs"])
        # k-means centroids from a fixed seed: the archives' geometry never depends on the run
        centroids = _centroids(niches)
        common = dict(ranges=[(0.0, 1.0), (0.0, 1.0)], centroids=centroids)
        self.networks = CVTArchive(solution_dim=1, **common)
        # multi-fidelity: the same archive at tell-time (rung-0) values, for the "added" credit
        # of prompts and curiosity, so a newcomer is never judged against promoted elites
        # (single fidelity: identical to ``networks``)
        self.networks_told = CVTArchive(solution_dim=1, **common)
        self.prompt_archive = CVTArchive(solution_dim=2, **common)
        self.archs: dict[int, tuple[str, str | None]] = {}  # candidate id -> (arch, code)
        self.scored: dict[int, tuple[float, list[float]]] = {}  # id -> (fitness, measures)
        self.curiosity: dict[int, float] = {}  # prompt-archive cell -> curiosity score
        self.prompt_fitness = [0.0] * len(self.prompts)  # collective fitness per prompt
        self.gen_best: dict[int, float] = {}  # generation -> best fitness told
        self.added = self.not_added = self.untrainable = 0
        self.last_offer: tuple[int, float, bool] | None = None  # last prompt individual offered

    # -- ask -------------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            rng, k = self.rng(), self.asked
            gen = k // self.batch
            if k < self.initial or self.networks.empty:
                if k >= self.initial and not self.archs:
                    break  # initial networks still in flight: wait for them
                prop = self._random(rng, gen)
            elif rng.random() < self.p_mutation or len(self.networks) < 2:
                prop = self._mutation(rng, gen, k % self.batch)
            else:
                prop = self._crossover(rng, gen)
            self.asked += 1
            out.append(prop)
        return out

    def replay(self, candidate: Candidate) -> None:
        """Resume: account for a stored proposal without calling the mutator again (``ask``
        changes no state but ``asked``; everything else is rebuilt by the tells)."""
        self.asked += 1

    def _random(self, rng: np.random.Generator, gen: int) -> Proposal:
        genome = self.space.random(rng, self.ctx.constraints)
        return self.proposal(genome, operator="random", notes="random initial network",
                             strategy_data=LLMaticTag(generation=gen).model_dump())

    def _elite_ids(self) -> np.ndarray:
        return self.networks.data("solution")[:, 0].astype(int)

    def _mutation(self, rng: np.random.Generator, gen: int, slot: int) -> Proposal:
        ids = self._elite_ids()
        parent = int(ids[int(rng.integers(len(ids)))])
        curious = slot < self.batch // 2
        cell = -1
        if curious and not self.prompt_archive.empty:
            data = self.prompt_archive.data()
            order = sorted(range(len(data["index"])), key=lambda i: (
                -self.curiosity.get(int(data["index"][i]), 0.0), -data["objective"][i],
                int(data["index"][i])))
            best = order[0]
            prompt_id = int(round(data["solution"][best][0]))
            temp = float(data["solution"][best][1])
            cell = int(data["index"][best])
        else:
            prompt_id, temp = int(rng.integers(len(self.prompts))), self.t0
        if slot % 2 == 1:  # half the batch jitters the temperature
            temp += float(rng.uniform(-0.1, 0.1))
        temp = float(np.clip(temp, 0.0, 1.0))
        tag = LLMaticTag(generation=gen, prompt_id=prompt_id, temperature=round(temp, 4), cell=cell)
        req = MutationRequest(
            operator="mutate", space=self.space_name, parents=[self._parent(parent)],
            idea=self._prompt_idea(prompt_id), instruction=self.prompts[prompt_id],
            constraints=self.ctx.constraints, seed=_seed(rng), temperature=temp)
        return self._call(req, rng, tag, [parent])

    def _crossover(self, rng: np.random.Generator, gen: int) -> Proposal:
        ids = self._elite_ids()
        measures = self.networks.data("measures")
        i = int(rng.integers(len(ids)))
        dist = np.linalg.norm(measures - measures[i], axis=1)
        dist[i] = np.inf
        j = int(np.argmin(dist))  # the nearest other elite
        a, b = int(ids[i]), int(ids[j])
        req = MutationRequest(
            operator="crossover", space=self.space_name,
            parents=[self._parent(a), self._parent(b)], instruction=CROSSOVER_PROMPT,
            constraints=self.ctx.constraints, seed=_seed(rng), temperature=0.7)
        return self._call(req, rng, LLMaticTag(generation=gen, temperature=0.7), [a, b])

    def _call(self, req: MutationRequest, rng: np.random.Generator, tag: LLMaticTag,
              parents: list[int]) -> Proposal:
        mut = self.ctx.mutator
        data = tag.model_dump()
        if mut is None:  # no mutator: the space's own variation operators stand in
            c = self.ctx.constraints
            genomes = [self.space.decode(self.archs[p][0]) for p in parents]
            child = (self.space.crossover(genomes[0], genomes[1], rng, c) if len(genomes) > 1
                     else self.space.mutate(genomes[0], rng, c))
            return self.proposal(child, parents=parents, operator=req.operator,
                                 prompt=req.instruction, strategy_data=data)
        res = mut.mutate(req)
        return Proposal(arch=res.arch, code=res.code, parents=parents, operator=req.operator,
                        mode=res.mode, move=res.move, mutation_status=res.status,
                        prompt=res.prompt or req.instruction, response=res.response,
                        usage=res.usage, error=res.error,
                        idea_id=req.idea.id if req.idea and res.applied_idea else None,
                        notes=res.notes, strategy_data=data)

    def _parent(self, cid: int) -> ParentInfo:
        arch, code = self.archs[cid]
        return ParentInfo(candidate_id=cid, arch=arch, code=code or "")

    def _prompt_idea(self, prompt_id: int) -> Idea | None:
        if self.space_name != "nb201":
            return None
        text, ops = NB201_PROMPTS[prompt_id]
        return Idea(id=f"llmatic-prompt-{prompt_id}", name=text[:60], category=Category.BLOCK_TYPE,
                    description=text, applies_to=["cell"], cell_ops=list(ops), source="offline")

    # -- tell ------------------------------------------------------------------------------------
    def tell(self, candidate: Candidate) -> None:
        if not candidate.strategy_data:
            return  # not one of ours
        tag = LLMaticTag.model_validate(candidate.strategy_data)
        gen, prompt_id, temp, cell = tag.generation, tag.prompt_id, tag.temperature, tag.cell
        if candidate.status == "duplicate":
            fitness, added, trainable = None, False, True  # nothing new: counts as not added
        else:
            vals = self.values(candidate)
            trainable = vals is not None
            fitness = -self.minimised(vals)[0] if vals is not None else None
            added = False
            if trainable:
                self.archs[candidate.id] = (candidate.arch or "", candidate.code)
                meas = self._measures(candidate)
                self.scored[candidate.id] = (fitness, meas)
                self.networks.add_single([candidate.id], fitness, meas)
                res = self.networks_told.add_single([candidate.id], fitness, meas)
                added = int(res["status"]) > 0
                self.gen_best[gen] = max(self.gen_best.get(gen, -math.inf), fitness)
        self.added += added
        self.not_added += trainable and not added
        self.untrainable += not trainable
        if prompt_id < 0:
            return  # random initial networks and crossovers add no prompt individual
        delta = 1.0 if added else (-0.5 if trainable else -1.0)
        if cell >= 0:
            self.curiosity[cell] = self.curiosity.get(cell, 0.0) + delta
        prev = self.gen_best.get(gen - 1, max(
            (v for g, v in self.gen_best.items() if g < gen), default=-math.inf))
        better = fitness is not None and fitness >= prev
        if fitness is not None and fitness > prev:
            self.prompt_fitness[prompt_id] += 1.0
        new_temp = float(np.clip(temp + (0.05 if better else -0.05), 0.0, 1.0))
        measures = [prompt_id / max(len(self.prompts) - 1, 1), new_temp]
        res = self.prompt_archive.add_single([prompt_id, new_temp],
                                             self.prompt_fitness[prompt_id], measures)
        self.last_offer = (prompt_id, new_temp, int(res["status"]) > 0)
        if int(res["status"]) > 0:
            new_cell = int(self.prompt_archive.index_of_single(measures))
            if new_cell != cell:
                self.curiosity.setdefault(new_cell, self.curiosity.get(cell, 0.0) + delta)

    def update(self, candidate: Candidate) -> None:
        """Multi-fidelity: a network's fitness becomes its higher-rung result, so each niche's
        elite (what parents are drawn from) is the best at the highest rung its members
        reached. A better score is one insertion; an elite whose score dropped makes the
        archive be rebuilt from every scored network (id order, as told), since another member
        may now hold its niche. The "added" credit keeps its tell-time archive."""
        vals = self.values(candidate)
        if vals is None or candidate.id not in self.scored:
            return
        old, meas = self.scored[candidate.id]
        new = -self.minimised(vals)[0]
        self.scored[candidate.id] = (new, meas)
        occupied, elite = self.networks.retrieve_single(meas)
        if not (occupied and int(elite["solution"][0]) == candidate.id and new < old):
            self.networks.add_single([candidate.id], new, meas)
            return
        self.networks.clear()
        for cid in sorted(self.scored):
            fit, m = self.scored[cid]
            self.networks.add_single([cid], fit, m)

    def _measures(self, cand: Candidate) -> list[float]:
        ev = cand.evaluation
        try:
            desc = self.space.describe(self.space.decode(cand.arch or ""), self.ctx.constraints)
        except ValueError:
            desc = {}
        wd = desc.get("width_depth_ratio", 0.0)
        mmacs = (ev.macs / 1e6) if ev is not None and ev.macs else desc.get("mmacs", 0.0)
        lo, hi = self.wd_range
        x = (float(wd) - lo) / (hi - lo) if hi > lo else 0.0
        mlo, mhi = self.mmacs_range
        y = math.log(max(mmacs, mlo) / mlo) / math.log(mhi / mlo) if mhi > mlo > 0 else 0.0
        return [float(np.clip(x, 0.0, 1.0)), float(np.clip(y, 0.0, 1.0))]

    def stats(self) -> dict[str, Any]:
        return {"network_elites": len(self.networks), "prompt_elites": len(self.prompt_archive),
                "added": self.added, "not_added": self.not_added,
                "untrainable": self.untrainable,
                "best_val_acc": None if self.networks.empty else float(
                    self.networks.data("objective").max())}


_CENTROIDS: dict[int, np.ndarray] = {}


def _centroids(niches: int) -> np.ndarray:
    """CVT centroids over [0, 1]^2 (pyribs' k-means, fixed seed), computed once per process."""
    if niches not in _CENTROIDS:
        from ribs.archives import k_means_centroids

        _CENTROIDS[niches] = k_means_centroids(centroids=niches, ranges=[(0.0, 1.0), (0.0, 1.0)],
                                               samples=10_000, seed=12345)[0]
    return _CENTROIDS[niches]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))
