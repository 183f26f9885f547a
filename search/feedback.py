"""Fine-grained feedback: per-idea statistics and per-lineage outcomes, both typed.

``IdeaStats`` is updated from tells only (in candidate-id order), so it is a pure function
of the stored run and survives resume. It feeds the fair sampler (least-tried ideas first,
valid rate and front entries as gentle weights) and the mutation requests (``record``).
``outcome`` turns a told candidate into the ``Outcome`` its lineage's next mutation receives.
Values are raw objective units (accuracy fraction, MACs, parameters, ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archlore.search.objectives import Objective
from archlore.search.protocol import IdeaRecord, Outcome
from archlore.search.records import Candidate


@dataclass
class IdeaStat:
    """What applying one idea has done so far. Deltas are child minus parent."""

    tries: int = 0
    valid: int = 0
    front_entries: int = 0  # children that were on the Pareto front when told
    sum_delta: dict[str, float] = field(default_factory=dict)  # objective -> summed change
    n_delta: int = 0

    @property
    def valid_rate(self) -> float:
        return self.valid / self.tries if self.tries else 0.0

    def mean_delta(self) -> dict[str, float]:
        return {k: v / self.n_delta for k, v in self.sum_delta.items()} if self.n_delta else {}


@dataclass
class IdeaStats:
    """Statistics per idea id (``None`` ideas -- seeds, crossover, moves -- are not tracked)."""

    by_idea: dict[str, IdeaStat] = field(default_factory=dict)

    def record(self, idea_id: str | None, child: dict[str, float] | None,
               parent: dict[str, float] | None, on_front: bool) -> None:
        """``child``/``parent``: objective values of valid candidates, None otherwise."""
        if not idea_id:
            return
        st = self.by_idea.setdefault(idea_id, IdeaStat())
        st.tries += 1
        if child is None:
            return
        st.valid += 1
        st.front_entries += int(on_front)
        if parent is not None:
            for k, v in child.items():
                if k in parent:
                    st.sum_delta[k] = st.sum_delta.get(k, 0.0) + v - parent[k]
            st.n_delta += 1

    def tries(self, idea_id: str) -> int:
        st = self.by_idea.get(idea_id)
        return st.tries if st else 0

    def get(self, idea_id: str) -> IdeaStat:
        return self.by_idea.get(idea_id, IdeaStat())

    def record_of(self, idea_id: str) -> IdeaRecord:
        st = self.get(idea_id)
        return IdeaRecord(idea_id=idea_id, tries=st.tries, valid=st.valid,
                          front_entries=st.front_entries, mean_delta=st.mean_delta())

    def as_dict(self) -> dict[str, dict]:
        out = {}
        for k, v in sorted(self.by_idea.items()):
            out[k] = {"tries": v.tries, "valid": v.valid, "front_entries": v.front_entries,
                      "valid_rate": v.valid_rate, "n_delta": v.n_delta,
                      "mean_delta": v.mean_delta()}
        return out


def objective_values(c: Candidate | None, objectives: list[Objective]) -> dict[str, float] | None:
    """``{objective: value}`` of a valid, evaluated candidate; None otherwise."""
    if c is None or c.status == "duplicate" or c.evaluation is None or not c.evaluation.ok:
        return None
    vals = {o.name: o.value(c.evaluation) for o in objectives}
    if any(v is None for v in vals.values()):
        return None
    return {k: float(v) for k, v in vals.items()}  # type: ignore[arg-type]


def outcome(c: Candidate, parent: Candidate | None, objectives: list[Objective],
            parent_values: dict[str, float] | None = None) -> Outcome:
    """The typed record of what candidate ``c`` did, for its lineage's next mutation.
    ``parent_values``: the parent's values to compare with (multi-fidelity: its rung-0 result,
    the rung ``c`` was told at, so a child is never judged against a promoted parent's longer
    training); default: the parent's current values."""
    base = dict(candidate_id=c.id, operator=c.operator, idea_id=c.idea_id, move=c.move)
    if c.status == "duplicate":
        return Outcome(**base, verdict="duplicate", duplicate_of=c.duplicate_of)
    ev = c.evaluation
    if c.error or ev is None:
        return Outcome(**base, verdict="no_candidate", reason=c.error or "")
    if not ev.ok:
        return Outcome(**base, verdict="failed", status=ev.status, stage=ev.stage,
                       reason=ev.reason)
    mine = objective_values(c, objectives) or {}
    theirs = parent_values if parent_values is not None else objective_values(parent, objectives)
    delta = {k: v - theirs[k] for k, v in mine.items()} if theirs else {}
    verdict = "same"
    if theirs:  # vs the parent on the run's first objective (the one a goal trades against)
        first = objectives[0]
        better = (delta[first.name] > 0) if first.maximise else (delta[first.name] < 0)
        verdict = "better" if better else "worse"
    return Outcome(**base, verdict=verdict, status=ev.status, stage=ev.stage, metrics=mine,
                   delta=delta, final_loss=ev.loss_curve[-1] if ev.loss_curve else None)
