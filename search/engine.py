"""The search engine: drives any registered strategy with an evaluation backend.

Asynchronous without a generation barrier, yet reproducible: a deterministic
*bounded-staleness* schedule. With ``W`` workers, candidate ``i`` is asked for exactly when
candidates ``0 .. i-W`` have been told (tells are applied in candidate-id order), so every
ask is a pure function of (seed, tells so far) and a free worker never waits for a whole
generation. A killed run resumes by replaying that schedule over the stored candidates:
stored proposals are re-used (the strategy is advanced with ``replay(candidate)`` when it has
one, else by re-asking and discarding), stored evaluations are re-told in id order, and
pending candidates are submitted again -- so interrupted + resumed ends with the same archive
as uninterrupted (offline mutator, fixed seed).

Also here: the novelty filter (near-duplicates are stored as ``duplicate``, counted and told,
never evaluated), repair (a child rejected before training goes back to the mutator with
the error, at most ``repair_turns`` times), and hypervolume tracking at every tell.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from archlore.search.backend import EvaluationBackend
from archlore.search.novelty import NoveltyFilter
from archlore.search.pareto import non_dominated_mask, normalised_hypervolume, objectives
from archlore.search.protocol import (
    Constraints,
    MutationRequest,
    Mutator,
    MutatorExhausted,
    ParentInfo,
    Usage,
)
from archlore.search.records import Candidate, Proposal
from archlore.search.store import RunStore
from archlore.search.strategies.base import Strategy

REPAIRABLE_STAGES = ("policy", "build", "shape", "cost")
Progress = Callable[[dict[str, Any]], None]


class ResumeMismatch(RuntimeError):
    """The replayed schedule does not match the stored run (changed code or config)."""


@dataclass
class FrontTracker:
    """Pareto front and normalised hypervolume of the valid candidates told so far."""

    ref_acc: float
    ref_mmacs: float | None  # None: fixed at 4x the first valid candidate's MMACs
    ids: list[int] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    mmacs: list[float] = field(default_factory=list)
    hypervolume: float = 0.0
    best_acc: float | None = None

    def add(self, cid: int, acc: float, mmacs: float) -> bool:
        """Add one valid point; True if it is on the front afterwards."""
        if self.ref_mmacs is None:
            self.ref_mmacs = max(4.0 * mmacs, 1e-6)
        self.best_acc = acc if self.best_acc is None else max(self.best_acc, acc)
        ids, a, m = self.ids + [cid], self.acc + [acc], self.mmacs + [mmacs]
        keep = non_dominated_mask(objectives(a, m))
        self.ids = [i for i, k in zip(ids, keep, strict=True) if k]
        self.acc = [x for x, k in zip(a, keep, strict=True) if k]
        self.mmacs = [x for x, k in zip(m, keep, strict=True) if k]
        self.hypervolume = normalised_hypervolume(self.acc, self.mmacs, self.ref_acc, self.ref_mmacs)
        return bool(keep[-1])


@dataclass
class RunResult:
    name: str
    run_dir: str
    status: str  # finished | interrupted | stopped (mutator exhausted, see stop_reason)
    counts: dict[str, Any]
    front: list[int]  # candidate ids on the final Pareto front
    hypervolume: float
    best_val_acc: float | None
    repaired: int  # repair children that passed evaluation
    usage: Usage
    seconds: float
    stop_reason: str | None = None


class SearchEngine:
    """One run: a strategy, a backend, a store. ``run()`` returns when the budget is spent."""

    def __init__(self, store: RunStore, strategy: Strategy, backend: EvaluationBackend, *,
                 budget: int, seed: int, constraints: Constraints, space_name: str = "open",
                 mutator: Mutator | None = None, ideas: dict[str, Idea] | None = None,
                 novelty: NoveltyFilter | None = None, repair_turns: int = 2,
                 max_proposals: int | None = None, hv_ref: tuple[float, float | None] = (0.0, None),
                 uses_code: bool = True, progress: Progress | None = None) -> None:
        self.store, self.strategy, self.backend = store, strategy, backend
        self.budget, self.seed, self.constraints = budget, seed, constraints
        self.space_name, self.mutator, self.ideas = space_name, mutator, ideas or {}
        self.novelty = novelty or NoveltyFilter()
        self.repair_turns = repair_turns
        self.max_proposals = max_proposals or 4 * budget
        self.uses_code = uses_code
        self.progress = progress
        self.workers = max(1, int(getattr(backend, "workers", 1)))
        self.front = FrontTracker(*hv_ref)
        self.stored = {c.id: c for c in store.candidates()}
        self.next_id = 0
        self.told = 0
        self.n_evaluable = 0  # created candidates that are not duplicates (the budget)
        self.done: dict[int, Candidate] = {}  # finished, waiting to be told in id order
        self.inflight: dict[Future, Candidate] = {}
        self.repairs: deque[Candidate] = deque()
        self.repair_depth: dict[int, int] = {}
        self.repaired = 0
        self.counts = {"evaluated": 0, "valid": 0, "duplicates": 0, "rejected": 0, "failed": 0}
        self.usage = Usage()
        self.exhausted = False
        self.stop_reason: str | None = None
        self.started = time.monotonic()

    # -- creation ------------------------------------------------------------------------------
    def _can_create(self) -> bool:
        return (not self.exhausted and self.n_evaluable < self.budget
                and self.next_id < self.max_proposals and self.next_id < self.told + self.workers)

    def _fill(self) -> None:
        while self._can_create():
            cand = self._create(self.next_id)
            if cand is None:  # the strategy waits for more results: retry after the next tell
                if not self.inflight and not self.done:
                    self.exhausted = True
                return
            self.next_id += 1

    def _next_proposal(self, cid: int) -> Proposal | None:
        stored = self.stored.get(cid)
        if self.repairs:
            failed = self.repairs.popleft()
            if stored is not None:
                if stored.operator != "repair" or stored.parents != [failed.id]:
                    raise ResumeMismatch(f"candidate {cid}: expected a repair of {failed.id}")
                return stored
            return self._repair(failed, cid)
        if stored is not None:
            replay = getattr(self.strategy, "replay", None)
            if replay is not None:
                replay(stored)
            else:
                got = self.strategy.ask(1)
                if not got:
                    raise ResumeMismatch(f"candidate {cid} is stored but the strategy asks nothing")
            return stored
        got = self.strategy.ask(1)
        return got[0] if got else None

    def _repair(self, failed: Candidate, cid: int) -> Proposal:
        ev = failed.evaluation
        assert self.mutator is not None and ev is not None
        parents = [ParentInfo(candidate_id=failed.id, code=failed.code or "", arch=failed.arch,
                              evaluation=ev)]
        grand = self.store.get(failed.parents[0]) if failed.parents else None
        if grand is not None:  # the failed child's own parent: something to fall back to
            parents.append(ParentInfo(candidate_id=grand.id, code=grand.code or "",
                                      arch=grand.arch, evaluation=grand.evaluation))
        req = MutationRequest(
            operator="repair", space=self.space_name, parents=parents,
            idea=self.ideas.get(failed.idea_id or ""), constraints=self.constraints,
            error=f"rejected at {ev.stage}: {ev.reason}", seed=int(self.seed * 1_000_003 + cid))
        res = self.mutator.mutate(req)
        return Proposal(code=res.code, arch=res.arch, parents=[failed.id], idea_id=failed.idea_id,
                        operator="repair", mode=res.mode, prompt=res.prompt, response=res.response,
                        usage=res.usage, notes=res.notes,
                        error=res.error or (None if (res.code or res.arch) else "no candidate"))

    def _create(self, cid: int) -> Candidate | None:
        prop = self._next_proposal(cid)
        if prop is None:
            return None
        if isinstance(prop, Candidate):  # replayed from the store
            cand = prop
            dup = self.store.duplicate_of(cid) if cand.status == "duplicate" else None
            if cand.status != "duplicate" and not cand.error:
                self.novelty.add(cid, cand.code if self.uses_code else None, cand.arch)
        else:
            text = (prop.code if self.uses_code else prop.arch) or ""
            cand = Candidate(id=cid, code_hash=Candidate.hash_text(text), **prop.model_dump())
            dup = None
            if not cand.error:
                dup = self.novelty.check_and_add(cid, cand.code if self.uses_code else None, cand.arch)
            if dup is not None:
                cand.status = "duplicate"
            elif cand.error:  # the mutator produced nothing: a failed candidate, no evaluation
                cand.status = "evaluated"
                cand.evaluation = Evaluation(status="failed", stage="build",
                                             reason=f"mutator produced no candidate: {cand.error}",
                                             dataset=self.constraints.dataset, seed=self.seed)
                cand.evaluated_at = cand.created_at
            self.store.add(cand, duplicate_of=dup)
        self.usage = self.usage + cand.usage
        if cand.operator == "repair" and cand.parents:
            self.repair_depth[cid] = self.repair_depth.get(cand.parents[0], 0) + 1
        if cand.status == "duplicate":
            cand.notes = (cand.notes + f" [near-duplicate of #{dup}]").strip()
            self.done[cid] = cand
        else:
            self.n_evaluable += 1
            if cand.status == "evaluated":
                self.done[cid] = cand
            else:
                self.inflight[self.backend.submit(cand)] = cand
        return cand

    # -- results -------------------------------------------------------------------------------
    def _collect(self, timeout: float | None) -> None:
        finished, _ = wait(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
        for fut in finished:
            cand = self.inflight.pop(fut)
            try:
                ev = fut.result()
            except Exception as exc:  # a backend bug must not lose the run
                ev = Evaluation(status="failed", stage="worker", reason=f"backend error: {exc!r}",
                                dataset=self.constraints.dataset, seed=self.seed)
            cand.evaluation = ev
            cand.status = "evaluated"
            cand.evaluated_at = self.store.set_evaluation(cand.id, ev)
            self.done[cand.id] = cand

    def _tell(self, cand: Candidate) -> None:
        self.strategy.tell(cand)
        self.told += 1
        ev = cand.evaluation
        if cand.status == "duplicate":
            self.counts["duplicates"] += 1
        else:
            self.counts["evaluated"] += 1
            if ev is not None and ev.ok and ev.val_acc is not None and ev.macs is not None:
                self.counts["valid"] += 1
                self.front.add(cand.id, ev.val_acc, ev.macs / 1e6)
                self.repaired += int(cand.operator == "repair")
            elif ev is not None and ev.status == "rejected":
                self.counts["rejected"] += 1
            else:
                self.counts["failed"] += 1
            if (ev is not None and not ev.ok and ev.stage in REPAIRABLE_STAGES
                    and self.mutator is not None and cand.code
                    and self.repair_depth.get(cand.id, 0) < self.repair_turns):
                self.repairs.append(cand)
        self.store.set_meta("progress", self.snapshot())
        stats = self.strategy.stats()
        if stats:
            self.store.set_meta("strategy_state", stats)
        if self.progress is not None:
            self.progress(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        return {**self.counts, "told": self.told, "created": self.next_id,
                "budget": self.budget, "in_flight": len(self.inflight),
                "front_size": len(self.front.ids), "best_val_acc": self.front.best_acc,
                "hypervolume": self.front.hypervolume, "hv_ref_mmacs": self.front.ref_mmacs,
                "repaired": self.repaired, "tokens": self.usage.prompt_tokens
                + self.usage.completion_tokens, "llm_calls": self.usage.calls,
                "seconds": time.monotonic() - self.started}

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> str:
        """Runs until the budget is spent (``finished``), Ctrl-C (``interrupted``) or the
        mutator can make no more proposals (``stopped``, reason in ``stop_reason``)."""
        try:
            while True:
                try:
                    self._fill()
                except MutatorExhausted as exc:  # e.g. LLM budget spent: drain, then stop
                    self.exhausted = True
                    self.stop_reason = str(exc) or type(exc).__name__
                if self.told in self.done:
                    self._tell(self.done.pop(self.told))
                    continue
                if self.inflight:
                    self._collect(timeout=1.0)
                    continue
                if self.told == self.next_id and not self._can_create():
                    break
                if not self._can_create():  # nothing in flight, nothing to tell: cannot progress
                    break
        except KeyboardInterrupt:
            return "interrupted"
        return "stopped" if self.stop_reason else "finished"

    def front_ids(self) -> list[int]:
        return list(self.front.ids)


def front_of(cands: list[Candidate]) -> list[Candidate]:
    """The valid candidates on the Pareto front (val acc up, MACs down), id order."""
    valid = [c for c in cands if c.valid and c.evaluation.val_acc is not None
             and c.evaluation.macs is not None]
    if not valid:
        return []
    pts = objectives([c.evaluation.val_acc for c in valid], [c.evaluation.macs / 1e6 for c in valid])
    keep = non_dominated_mask(pts)
    return [c for c, k in zip(valid, keep, strict=True) if k]


def hypervolume_curve(cands: list[Candidate], ref_acc: float, ref_mmacs: float | None) -> np.ndarray:
    """Normalised hypervolume after each tell (candidate-id order), shape (n,)."""
    tracker = FrontTracker(ref_acc, ref_mmacs)
    out = np.zeros(len(cands))
    for i, c in enumerate(cands):
        ev = c.evaluation
        if c.valid and ev.val_acc is not None and ev.macs is not None:
            tracker.add(c.id, ev.val_acc, ev.macs / 1e6)
        out[i] = tracker.hypervolume
    return out


# -- building a run from a config -------------------------------------------------------------
class RunExists(RuntimeError):
    """A run of that name already has candidates; resume it or pick another name."""


def _constraints(cfg: Any) -> Constraints:
    from archlore.evaluator.data import dataset_info

    in_ch, classes, size = dataset_info(cfg.dataset)
    return Constraints(dataset=cfg.dataset, in_channels=in_ch, num_classes=classes,
                       image_size=size, max_mmacs=cfg.max_mflops, max_params=cfg.max_params)


def _default_ref_mmacs(space: Any, constraints: Constraints) -> float | None:
    """2x the largest seed's MACs (open space), so the first front is well inside the box."""
    seeds = getattr(space, "seeds", None)
    estimate = getattr(space, "estimate_macs", None)
    if seeds is None or estimate is None:
        return None
    macs = [estimate(s, constraints) for s in seeds(constraints)]
    return 2.0 * max(macs) / 1e6 if macs else None


def run_search(config: Any, runs_root: str | Path, *, mutator: Mutator | None = None,
               backend: EvaluationBackend | None = None, knowledge: Any = None,
               resume: bool = False, progress: Progress | None = None,
               write_outputs: bool = True) -> RunResult:
    """Run (or resume) the search ``config`` (a ``SearchConfig``) under ``runs_root/NAME``.

    ``mutator``: any ``search.protocol.Mutator`` (the CLI builds it with
    ``agent.mutators.make_mutator``); ``backend``: default a ``PoolBackend`` over the evaluator
    pool with ``config.workers`` workers; ``knowledge``: a ``KnowledgeStore`` or a list of ideas
    (default: the built-in corpus). On ``resume`` the saved config of run NAME is used and the
    given one only supplies the name. Returns a ``RunResult``; outputs (pareto.csv, .png, models,
    report.html) are written to the run directory unless ``write_outputs`` is False.
    """
    from archlore.evaluator.records import EvalConfig
    from archlore.search.config import SearchConfig
    from archlore.search.registry import SPACES, STRATEGIES
    from archlore.search.strategies.fairnad import load_ideas

    run_dir = Path(runs_root) / config.with_name().name
    fresh = not resume and not run_dir.exists()  # ours to remove if the run cannot start
    store = RunStore(run_dir, create=not resume)
    started = False
    try:
        if resume:
            saved = store.get_meta("config")
            if saved is None:
                raise RunExists(f"run {run_dir.name} has no saved config to resume from")
            config = SearchConfig.model_validate(saved)
        else:
            config = config.with_name()
            if store.count() > 0:
                raise RunExists(f"run {config.name!r} already exists in {run_dir}; "
                                f"use --resume {config.name} or another --name")
            store.set_meta("config", config.model_dump(mode="json"))
            store.set_meta("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        space = SPACES.get(config.space)()
        constraints = _constraints(config)
        if resume:  # the ideas the run started with, even if the knowledge store grew since
            ideas = list(store.ideas().values()) or load_ideas(knowledge)
        else:
            ideas = load_ideas(knowledge)
            store.save_ideas(ideas)
        ref_mmacs = config.hv_ref_mflops or config.max_mflops
        if ref_mmacs is None:
            ref_mmacs = store.get_meta("hv_ref_mmacs") or _default_ref_mmacs(space, constraints)
        store.set_meta("hv_ref_mmacs", ref_mmacs)
        store.set_meta("hv_ref_acc", config.hv_ref_acc)
        ctx_options = {"n_seeds": config.n_seeds, "mutation": config.mutation.model_dump(),
                       "ideas": ideas, **config.options}
        from archlore.search.strategies.base import StrategyContext

        strategy = STRATEGIES.get(config.strategy)(StrategyContext(
            space=space, seed=config.seed, constraints=constraints, mutator=mutator,
            knowledge=knowledge if knowledge is not None else ideas, options=ctx_options))
        own_backend = backend is None
        make_backend = getattr(space, "make_backend", None)
        if backend is None and make_backend is not None:  # table-backed spaces answer queries
            backend = make_backend(config)
        if backend is None:
            from archlore.search.backends import PoolBackend

            backend = PoolBackend(EvalConfig(
                dataset=config.dataset, data_root=config.data_root, epochs=config.epochs,
                max_steps=config.max_steps, batch_size=config.batch_size, lr=config.lr,
                seed=config.seed, max_mmacs=config.max_mflops, max_params=config.max_params,
                timeout_s=config.eval_timeout_s), workers=config.workers, devices=config.devices)
        engine = SearchEngine(
            store, strategy, backend, budget=config.budget, seed=config.seed,
            constraints=constraints, space_name=config.space, mutator=mutator,
            ideas={i.id: i for i in ideas},
            novelty=NoveltyFilter(config.novelty_threshold, shingle=config.novelty_shingle),
            repair_turns=config.repair_turns,
            max_proposals=int(config.budget * config.max_proposals_factor),
            hv_ref=(config.hv_ref_acc, ref_mmacs),
            uses_code=bool(getattr(space, "needs_code", True)), progress=progress)
        store.set_meta("status", "running")
        started = True
        t0 = time.monotonic()
        status = "interrupted"
        try:
            status = engine.run()
        finally:
            if own_backend:
                backend.close(cancel=status != "finished")
        seconds = store.get_meta("seconds", 0.0) + (time.monotonic() - t0)
        store.set_meta("seconds", seconds)
        store.set_meta("status", status)
        store.set_meta("stop_reason", engine.stop_reason)
        store.set_meta("result", {"front": engine.front_ids(), "repaired": engine.repaired,
                                  "hypervolume": engine.front.hypervolume})
        if write_outputs:
            from archlore.search.report import write_outputs as _write

            _write(store)
        return RunResult(name=config.name, run_dir=str(run_dir), status=status,
                         counts=store.summary(), front=engine.front_ids(),
                         hypervolume=engine.front.hypervolume, best_val_acc=engine.front.best_acc,
                         repaired=engine.repaired, usage=engine.usage, seconds=seconds,
                         stop_reason=engine.stop_reason)
    except Exception:
        if fresh and not started:  # bad setup (space, dataset, table...): leave no empty run
            store.close()
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        store.close()
