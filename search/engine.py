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

Also here: the novelty filter (near-duplicates are stored as ``duplicate`` with
``duplicate_of``, counted and told, never evaluated), repair (a child rejected before training
goes back to the mutator with a typed ``Failure``, at most ``repair_turns`` times), and
hypervolume tracking over the run's objectives at every tell. The number of candidates in
flight follows ``backend.slots()``, re-read every loop (a cluster may grow or shrink).
Building an engine from a config lives in ``search.run``.

Multi-fidelity (``fidelity=FidelityPlan``, ``search.fidelity``): candidates are scored at rung
0; after each tell and each promotion result the ASHA ladder names the candidates due for
the next rung, which are scored in free slots before new candidates are created. Every rung's
result is stored (``RunStore.add_rung``); the candidate's row and object (which strategies
hold) carry the highest rung reached, the front is rebuilt from those, and the strategy is
told of each valid promotion with ``Strategy.update(candidate)`` (its feedback is then the
highest rung each candidate reached; on resume it is told rung 0 and updated, as in the
original run). Evaluations carry their rung in
``metrics`` (``rung``, ``fidelity_epochs``). On resume the stored rungs are re-recorded when
their candidate is re-told and promotions not yet scored are issued again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from archlore.search.backends.base import EvaluationBackend
from archlore.search.fidelity import FidelityPlan, tag
from archlore.search.front import FrontTracker
from archlore.search.novelty import NoveltyFilter
from archlore.search.objectives import Objective, get_objectives
from archlore.search.protocol import (
    Constraints,
    Failure,
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
META_INTERVAL_S = 1.0  # progress / strategy statistics saved for views at most this often
Progress = Callable[[dict[str, Any]], None]


class ResumeMismatch(RuntimeError):
    """The replayed schedule does not match the stored run (changed code or config)."""


@dataclass
class RunResult:
    name: str
    run_dir: str
    status: str  # finished | interrupted | stopped (mutator exhausted, see stop_reason)
    counts: dict[str, Any]
    front: list[int]  # candidate ids on the final Pareto front
    hypervolume: float
    best_val_acc: float | None  # best value of the first objective
    repaired: int  # repair children that passed evaluation
    usage: Usage
    seconds: float
    stop_reason: str | None = None
    fidelity: dict[str, Any] | None = None  # multi-fidelity: rung counts, top-rung front


class SearchEngine:
    """One run: a strategy, a backend, a store. ``run()`` returns when the budget is spent."""

    def __init__(self, store: RunStore, strategy: Strategy, backend: EvaluationBackend, *,
                 budget: int, seed: int, constraints: Constraints, space_name: str = "open",
                 mutator: Mutator | None = None, ideas: dict[str, Idea] | None = None,
                 novelty: NoveltyFilter | None = None, repair_turns: int = 2,
                 max_proposals: int | None = None, objectives: list[Objective] | None = None,
                 hv_refs: list[float | None] | None = None, uses_code: bool = True,
                 progress: Progress | None = None, fidelity: FidelityPlan | None = None) -> None:
        self.store, self.strategy, self.backend = store, strategy, backend
        self.budget, self.seed, self.constraints = budget, seed, constraints
        self.space_name, self.mutator, self.ideas = space_name, mutator, ideas or {}
        self.novelty = novelty or NoveltyFilter()
        self.repair_turns = repair_turns
        self.max_proposals = max_proposals or 4 * budget
        self.uses_code = uses_code
        self.progress = progress
        self.objectives = objectives or get_objectives(["val_acc", "macs"])
        self.front = FrontTracker(self.objectives, hv_refs or [None] * len(self.objectives))
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
        self._saved_at = -META_INTERVAL_S
        self.fid = fidelity
        self.stored_rungs = store.rungs() if fidelity is not None else {}
        self.by_id: dict[int, Candidate] = {}  # told, not duplicates (multi-fidelity)
        self.promo_queue: deque[tuple[int, int]] = deque()
        self.promo_inflight: dict[Future, tuple[int, int]] = {}
        self.promoted = 0
        self.strategy_updates = 0  # Strategy.update calls (multi-fidelity)
        self.rung_cpu_s = [0.0] * (len(fidelity.ladder.rungs) if fidelity is not None else 0)

    # -- creation ------------------------------------------------------------------------------
    def _busy(self) -> int:
        return len(self.inflight) + len(self.promo_inflight)

    def _can_create(self) -> bool:
        slots = max(1, self.backend.slots())
        return (not self.exhausted and self.n_evaluable < self.budget
                and self.next_id < self.max_proposals
                and self.next_id < self.told + slots and self._busy() < slots)

    def _submit(self, cand: Candidate) -> Future[Evaluation]:
        if self.fid is not None and cand.code:
            return self.fid.submit(cand.code, self.fid.config(0))
        return self.backend.submit(cand)

    def _fill(self) -> None:
        while self.promo_queue and self._busy() < max(1, self.backend.slots()):
            cid, rung = self.promo_queue.popleft()
            assert self.fid is not None
            cand = self.by_id[cid]
            self.promo_inflight[self.fid.submit(cand.code or "", self.fid.config(rung))] = (
                cid, rung)
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
            self.strategy.replay(stored)
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
            objectives=[o.name for o in self.objectives],
            failure=Failure(status=ev.status, stage=ev.stage, reason=ev.reason),
            seed=int(self.seed * 1_000_003 + cid))
        res = self.mutator.mutate(req)
        return Proposal(code=res.code, arch=res.arch, parents=[failed.id], idea_id=failed.idea_id,
                        operator="repair", mode=res.mode, move=res.move,
                        mutation_status=res.status, prompt=res.prompt, response=res.response,
                        usage=res.usage, notes=res.notes,
                        error=res.error or (None if (res.code or res.arch) else "no candidate"))

    def _create(self, cid: int) -> Candidate | None:
        prop = self._next_proposal(cid)
        if prop is None:
            return None
        if isinstance(prop, Candidate):  # replayed from the store
            cand = prop
            if cand.status != "duplicate" and not cand.error:
                self.novelty.add(cid, cand.code if self.uses_code else None, cand.arch)
        else:
            text = (prop.code if self.uses_code else prop.arch) or ""
            cand = Candidate(id=cid, code_hash=Candidate.hash_text(text), **prop.model_dump())
            dup = None
            if not cand.error:
                dup = self.novelty.check_and_add(cid, cand.code if self.uses_code else None, cand.arch)
            if dup is not None:
                cand.status, cand.duplicate_of = "duplicate", dup
            elif cand.error:  # the mutator produced nothing: a failed candidate, no evaluation
                cand.status = "evaluated"
                cand.evaluation = Evaluation(status="failed", stage="build",
                                             reason=f"mutator produced no candidate: {cand.error}",
                                             dataset=self.constraints.dataset, seed=self.seed)
                cand.evaluated_at = cand.created_at
            self.store.add(cand)
        self.usage = self.usage + cand.usage
        if cand.operator == "repair" and cand.parents:
            self.repair_depth[cid] = self.repair_depth.get(cand.parents[0], 0) + 1
        if cand.status == "duplicate":
            self.done[cid] = cand
        else:
            self.n_evaluable += 1
            if cand.status == "evaluated":
                self.done[cid] = cand
            else:
                self.inflight[self._submit(cand)] = cand
        return cand

    # -- results -------------------------------------------------------------------------------
    def _collect(self, timeout: float | None) -> None:
        finished, _ = wait(list(self.inflight) + list(self.promo_inflight), timeout=timeout,
                           return_when=FIRST_COMPLETED)
        for fut in sorted(finished, key=self._order):
            try:
                ev = fut.result()
            except Exception as exc:  # a backend bug must not lose the run
                ev = Evaluation(status="failed", stage="worker", reason=f"backend error: {exc!r}",
                                dataset=self.constraints.dataset, seed=self.seed)
            if fut in self.promo_inflight:
                self._promoted(*self.promo_inflight.pop(fut), ev)
                continue
            cand = self.inflight.pop(fut)
            if self.fid is not None:
                ev = tag(ev, 0, self.fid.config(0))
                self.store.add_rung(cand.id, 0, ev)
                self._count_cpu(0, ev)
            cand.evaluation = ev
            cand.status = "evaluated"
            cand.evaluated_at = self.store.set_evaluation(cand.id, ev)
            self.done[cand.id] = cand

    def _order(self, fut: Future) -> tuple[int, int]:
        """Results that arrive together are applied in (candidate id, rung) order."""
        if fut in self.promo_inflight:
            return self.promo_inflight[fut]
        return (self.inflight[fut].id, 0)

    # -- multi-fidelity ------------------------------------------------------------------------
    def _values(self, ev: Evaluation | None) -> list[float] | None:
        if ev is None or not ev.ok:
            return None
        vals = [o.value(ev) for o in self.objectives]
        return None if any(v is None for v in vals) else [float(v) for v in vals]  # type: ignore[arg-type]

    def _ladder_tell(self, cand: Candidate) -> None:
        assert self.fid is not None
        ladder = self.fid.ladder
        self.by_id[cand.id] = cand
        stored = self.stored_rungs.get(cand.id)
        if stored:  # resume: every rung this candidate reached before
            for rung, ev in sorted(stored.items()):
                ladder.record(cand.id, rung, self._values(ev))
            self.promoted += sum(1 for r in stored if r > 0)
        else:
            ladder.record(cand.id, 0, self._values(cand.evaluation) if cand.code else None)
        self.promo_queue.extend(ladder.promotions())

    def _promoted(self, cid: int, rung: int, ev: Evaluation) -> None:
        assert self.fid is not None
        ev = tag(ev, rung, self.fid.config(rung))
        self.store.add_rung(cid, rung, ev)
        self._count_cpu(rung, ev)
        vals = self._values(ev)
        self.fid.ladder.record(cid, rung, vals)
        self.promoted += 1
        if vals is not None:  # the candidate now stands for its highest rung everywhere
            cand = self.by_id[cid]
            cand.evaluation = ev
            cand.evaluated_at = self.store.set_evaluation(cid, ev)
            self._rebuild_front()
            self._update_strategy(cand)
        self.promo_queue.extend(self.fid.ladder.promotions())
        if self.progress is not None:
            self.progress(self.snapshot())

    def _count_cpu(self, rung: int, ev: Evaluation) -> None:
        """Worker CPU-seconds per rung (kernel accounting, ``metrics.worker_cpu_s``), this
        session's evaluations only (a resumed run starts counting again)."""
        self.rung_cpu_s[rung] += float(ev.metrics.get("worker_cpu_s") or 0.0)

    def _update_strategy(self, cand: Candidate) -> None:
        """Tell the strategy that ``cand`` now stands for a higher rung (``Strategy.update``;
        duck-typed strategies without one are skipped)."""
        update = getattr(self.strategy, "update", None)
        if callable(update):
            update(cand)
            self.strategy_updates += 1

    def _rebuild_front(self) -> None:
        tracker = FrontTracker(self.objectives, list(self.front.refs))
        for cid in sorted(self.by_id):
            if self._values(self.by_id[cid].evaluation) is not None:
                tracker.add_candidate(self.by_id[cid])
        self.front = tracker

    def fidelity_summary(self) -> dict[str, Any] | None:
        """Rung counts and the front among candidates that reached the top rung (the
        hypervolume to compare with a single-fidelity run at the top rung's epochs)."""
        if self.fid is None:
            return None
        ladder = self.fid.ladder
        top = FrontTracker(self.objectives, list(self.front.refs))
        for cid in sorted(self.by_id):
            if ladder.highest(cid) == ladder.top:
                top.add_candidate(self.by_id[cid])
        return {"rungs": ladder.rungs, "reduction": ladder.reduction, "counts": ladder.counts(),
                "promoted": self.promoted, "strategy_updates": self.strategy_updates,
                "cpu_s_per_rung": [round(x, 3) for x in self.rung_cpu_s],
                "top_rung_front": list(top.ids),
                "top_rung_hypervolume": top.hypervolume,
                "front_rungs": {str(c): ladder.highest(c) for c in self.front.ids}}

    def _tell(self, cand: Candidate) -> None:
        top_ev = None
        if self.fid is not None and cand.status != "duplicate" and cand.evaluation is not None:
            stored = self.stored_rungs.get(cand.id) or {}
            higher = [k for k, e in stored.items() if k > 0 and self._values(e) is not None]
            if 0 in stored and higher:
                # resume: the strategy is told rung 0 and then updated, the same sequence as in
                # the interrupted run. The rungs table is the record: a stop between a rung's
                # insert and the row's update leaves the row one rung behind, mended here.
                top_ev = stored[max(higher)]
                if cand.evaluation.metrics.get("rung", 0) != max(higher):
                    cand.evaluated_at = self.store.set_evaluation(cand.id, top_ev)
                cand.evaluation = stored[0]
        self.strategy.tell(cand)
        if top_ev is not None:
            cand.evaluation = top_ev
            self._update_strategy(cand)
        self.told += 1
        if self.fid is not None and cand.status != "duplicate":
            self._ladder_tell(cand)
        ev = cand.evaluation
        if cand.status == "duplicate":
            self.counts["duplicates"] += 1
        else:
            self.counts["evaluated"] += 1
            if ev is not None and ev.ok and all(o.value(ev) is not None for o in self.objectives):
                self.counts["valid"] += 1
                self.front.add_candidate(cand)
                self.repaired += int(cand.operator == "repair")
            elif ev is not None and ev.status == "rejected":
                self.counts["rejected"] += 1
            else:
                self.counts["failed"] += 1
            if (ev is not None and not ev.ok and ev.stage in REPAIRABLE_STAGES
                    and self.mutator is not None and cand.code
                    and self.repair_depth.get(cand.id, 0) < self.repair_turns):
                self.repairs.append(cand)
        now = time.monotonic()
        if now - self._saved_at >= META_INTERVAL_S:  # views only: the store has every tell
            self._save_meta()
            self._saved_at = now
        if self.progress is not None:
            self.progress(self.snapshot())

    def _save_meta(self) -> None:
        self.store.set_meta("progress", self.snapshot())
        stats = self.strategy.stats()
        if stats:
            self.store.set_meta("strategy_state", stats)

    def snapshot(self) -> dict[str, Any]:
        return {**self.counts, "told": self.told, "created": self.next_id,
                "budget": self.budget, "in_flight": len(self.inflight),
                "front_size": len(self.front.ids), "best_val_acc": self.front.best,
                "hypervolume": self.front.hypervolume,
                "hv_refs": dict(zip([o.name for o in self.objectives], self.front.refs,
                                    strict=True)),
                "backend": self.backend.describe(),
                "repaired": self.repaired, "tokens": self.usage.prompt_tokens
                + self.usage.completion_tokens, "llm_calls": self.usage.calls,
                "seconds": time.monotonic() - self.started,
                **({"fidelity": {"counts": self.fid.ladder.counts(), "promoted": self.promoted,
                                 "promotions_in_flight": len(self.promo_inflight)}}
                   if self.fid is not None else {})}

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
                if self.inflight or self.promo_inflight:
                    self._collect(timeout=1.0)
                    continue
                if self.promo_queue:  # submitted by the next _fill
                    continue
                if self.told == self.next_id and not self._can_create():
                    break
                if not self._can_create():  # nothing in flight, nothing to tell: cannot progress
                    break
        except KeyboardInterrupt:
            self._save_meta()
            return "interrupted"
        self._save_meta()
        return "stopped" if self.stop_reason else "finished"

    def front_ids(self) -> list[int]:
        return list(self.front.ids)
