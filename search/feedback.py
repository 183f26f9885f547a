"""Fine-grained feedback: per-idea statistics and per-lineage history.

``IdeaStats`` is updated from tells only (in candidate-id order), so it is a pure function
of the stored run and survives resume. It feeds the fair sampler (least-tried ideas first,
valid rate and front entries as gentle weights) and the mutation prompts (``summary``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archlore.evaluator.records import Evaluation


@dataclass
class IdeaStat:
    """What applying one idea has done so far. Deltas are child minus parent."""

    tries: int = 0
    valid: int = 0
    front_entries: int = 0  # children that were on the Pareto front when told
    sum_dacc: float = 0.0  # accuracy points (fractions) vs parent, valid children with a parent
    sum_dmmacs: float = 0.0  # millions of MACs per image vs parent
    n_delta: int = 0

    @property
    def valid_rate(self) -> float:
        return self.valid / self.tries if self.tries else 0.0

    @property
    def mean_dacc(self) -> float | None:
        return self.sum_dacc / self.n_delta if self.n_delta else None

    @property
    def mean_dmmacs(self) -> float | None:
        return self.sum_dmmacs / self.n_delta if self.n_delta else None


@dataclass
class IdeaStats:
    """Statistics per idea id (``None`` ideas -- seeds, crossover -- are not tracked)."""

    by_idea: dict[str, IdeaStat] = field(default_factory=dict)

    def record(self, idea_id: str | None, child: Evaluation | None,
               parent: Evaluation | None, on_front: bool) -> None:
        if not idea_id:
            return
        st = self.by_idea.setdefault(idea_id, IdeaStat())
        st.tries += 1
        if child is None or not child.ok:
            return
        st.valid += 1
        st.front_entries += int(on_front)
        if parent is not None and parent.ok and child.val_acc is not None \
                and parent.val_acc is not None and child.macs is not None and parent.macs is not None:
            st.sum_dacc += child.val_acc - parent.val_acc
            st.sum_dmmacs += (child.macs - parent.macs) / 1e6
            st.n_delta += 1

    def tries(self, idea_id: str) -> int:
        st = self.by_idea.get(idea_id)
        return st.tries if st else 0

    def get(self, idea_id: str) -> IdeaStat:
        return self.by_idea.get(idea_id, IdeaStat())

    def summary(self, idea_id: str) -> str:
        """One line for a mutation prompt: how this idea has fared in this run."""
        st = self.by_idea.get(idea_id)
        if not st or not st.tries:
            return f"idea {idea_id}: not tried yet in this run"
        text = f"idea {idea_id}: {st.tries} tries, {st.valid_rate:.0%} valid, {st.front_entries} reached the front"
        if st.n_delta:
            text += (f", mean change vs parent {100 * st.mean_dacc:+.2f} acc points, "
                     f"{st.mean_dmmacs:+.3f} MMACs")
        return text

    def as_dict(self) -> dict[str, dict]:
        out = {}
        for k, v in sorted(self.by_idea.items()):
            out[k] = {**vars(v), "valid_rate": v.valid_rate, "mean_dacc": v.mean_dacc,
                      "mean_dmmacs": v.mean_dmmacs}
        return out


def describe_outcome(cid: int, operator: str, idea_id: str | None, ev: Evaluation | None,
                     parent: Evaluation | None, duplicate_of: int | None = None,
                     notes: str = "") -> str:
    """One line of lineage feedback for the next mutation of this lineage: what was done
    (the mutator's notes, e.g. ``move: narrower``) and the verdict against the parent
    (``better`` / ``worse`` in accuracy), or the error."""
    what = f"#{cid} {operator}" + (f" with idea {idea_id}" if idea_id else "")
    # the mutator's notes come last; quote the part naming its move (the offline mutator ends
    # with "; estimate ...", and a refine reads the move back from this line)
    parts = notes.split(" [near-duplicate")[0].split("; ")
    note = next((p for p in reversed(parts) if "move:" in p), parts[-1]).strip()
    if note:
        what += f" ({note[:120]})"
    if duplicate_of is not None:
        return f"{what}: rejected as a near-duplicate of #{duplicate_of}; try a different change"
    if ev is None:
        return f"{what}: the mutator produced no candidate"
    if not ev.ok:
        return f"{what}: {ev.status} at {ev.stage}: {ev.reason[:200]}"
    text = f"{what}: val acc {ev.val_acc:.4f}, {ev.macs / 1e6:.3f} MMACs, {ev.params} params"
    if parent is not None and parent.ok and parent.val_acc is not None and parent.macs is not None:
        verdict = "better" if ev.val_acc > parent.val_acc else "worse"
        text += (f" ({verdict} than the parent: {100 * (ev.val_acc - parent.val_acc):+.2f} acc "
                 f"points, {(ev.macs - parent.macs) / 1e6:+.3f} MMACs)")
    if ev.loss_curve:
        text += f"; final train loss {ev.loss_curve[-1]:.3f}"
    return text
