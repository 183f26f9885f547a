"""The fair idea sampler balances categories, whatever the corpus looks like."""

from __future__ import annotations

from collections import Counter

import numpy as np
from archlore.corpora import load_builtin_ideas
from archlore.knowledge.schema import Category, Direction, Effect, Idea
from archlore.search.feedback import IdeaStats
from archlore.search.sampler import FairIdeaSampler


def _idea(i: int, cat: Category, **kw) -> Idea:
    return Idea(id=f"{cat.value}-{i}", name=f"{cat.value} {i}", category=cat, description="x", **kw)


def test_categories_balanced_on_a_skewed_corpus():
    # 40 attention ideas, 2 activation, 1 normalization: a corpus-frequency sampler would
    # pick attention ~93 % of the time; the fair sampler ~1/3.
    ideas = ([_idea(i, Category.ATTENTION) for i in range(40)]
             + [_idea(i, Category.ACTIVATION) for i in range(2)] + [_idea(0, Category.NORMALIZATION)])
    sampler = FairIdeaSampler(ideas)
    stats = IdeaStats()
    rng = np.random.default_rng(0)
    n = 6000
    counts: dict[str, int] = {}
    for _ in range(n):
        idea = sampler.draw(rng, stats)
        counts[idea.category.value] = counts.get(idea.category.value, 0) + 1
        stats.record(idea.id, None, None, False)  # tried (failed): steers towards the least-tried
    expected = n / 3
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert len(counts) == 3
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
    # inside the big category, least-tried first: tries stay within a narrow band
    tries = [stats.tries(i.id) for i in ideas if i.category == Category.ATTENTION]
    assert max(tries) - min(tries) <= 3


def test_builtin_corpus_categories_balanced():
    ideas = [i for i in load_builtin_ideas() if i.edits]
    sampler = FairIdeaSampler(ideas)
    rng = np.random.default_rng(1)
    stats = IdeaStats()
    n = 5000
    counts = {c: 0 for c in sampler.categories}
    for _ in range(n):
        counts[sampler.draw(rng, stats).category.value] += 1
    k = len(counts)
    expected = n / k
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert k >= 5
    assert chi2 < 30  # well under the 0.001 critical value for <= 10 degrees of freedom


def test_filter_keeps_remaining_categories_equal_and_none_when_empty():
    ideas = [_idea(0, Category.SCALING, effect=Effect(macs=Direction.DOWN)),
             _idea(1, Category.SCALING), _idea(0, Category.ACTIVATION)]
    sampler = FairIdeaSampler(ideas)
    rng = np.random.default_rng(0)
    cut = lambda i: i.effect.macs == Direction.DOWN  # noqa: E731
    assert {sampler.draw(rng, IdeaStats(), cut).id for _ in range(50)} == {"scaling-0"}
    assert sampler.draw(rng, IdeaStats(), lambda i: False) is None


def test_failing_ideas_fade_and_front_entries_help():
    good, bad = _idea(0, Category.SCALING), _idea(1, Category.SCALING)
    stats = IdeaStats()
    ok = {"val_acc": 0.9, "macs": 1000.0}  # a valid child's objective values
    for _ in range(5):
        stats.record(good.id, ok, None, True)
        stats.record(bad.id, None, None, False)  # a failed child
    assert FairIdeaSampler.weight(good, stats) > 2 * FairIdeaSampler.weight(bad, stats)


class _NoOpScript:
    """A scripted mutator: ideas in ``noop`` are already embodied by every parent (the offline
    mutator's ``no-op:`` answer); any other idea yields a new NB201 cell."""

    name = "scripted"
    uses_paper_text = False

    def __init__(self, noop: set[str]) -> None:
        self.noop = noop

    def unsupported_reason(self, idea, space):
        return None

    def mutate(self, request):
        from archlore.search.protocol import MutationResult

        if request.idea is not None and request.idea.id in self.noop:
            return MutationResult(status="no_op",
                                  error=f"the parent already embodies {request.idea.id}")
        return MutationResult(arch="|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                              mode="offline")


def test_fairnad_keeps_categories_fair_when_ideas_are_no_ops():
    """A no-op idea is never told, so it stays the least tried of its category; its category
    must still get its share (retry inside the category), and a category whose ideas are all
    no-ops must not turn idea mutations into refines."""
    from archlore.evaluator.records import Evaluation
    from archlore.search.records import Candidate
    from archlore.search.spaces.nb201 import NB201Space
    from archlore.search.strategies.base import StrategyContext
    from archlore.search.strategies.fairnad import FairNAD

    def mk(iid: str, cat: Category) -> Idea:
        return Idea(id=iid, name=iid, category=cat, description=iid)

    ideas = [mk("a1", Category.BLOCK_TYPE), mk("a2", Category.BLOCK_TYPE),
             mk("b1", Category.ATTENTION), mk("b2", Category.ATTENTION),
             mk("b3", Category.ATTENTION), mk("b4", Category.ATTENTION),
             mk("d-noop", Category.SCALING), mk("d-good", Category.SCALING)]
    space = NB201Space()
    strat = FairNAD(StrategyContext(space=space, mutator=_NoOpScript({"b1", "b2", "b3", "b4",
                                                                      "d-noop"}),
                                    knowledge=ideas, options={"n_seeds": 0}))
    parent = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    strat.tell(Candidate(id=0, arch=parent, status="evaluated", evaluation=Evaluation(
        status="ok", stage="eval", val_acc=0.5, macs=space.macs(parent))))
    ok = {"val_acc": 0.5, "macs": 1.0}
    for iid in ("a1", "a2", "d-good", "d-good"):  # tried before; d-noop never reaches a tell
        strat.idea_stats.record(iid, ok, None, False)
    picked = Counter()
    for s in range(600):
        prop = strat._propose_mutation(np.random.default_rng([7, s]), force="idea")
        picked[prop.idea_id[0] if prop.idea_id else prop.operator] += 1
    assert picked["refine"] == 0, picked
    assert set(picked) == {"a", "d"}
    assert abs(picked["d"] / 600 - 0.5) < 0.08, picked


def test_bandit_follows_rewards_but_every_category_keeps_its_floor():
    from archlore.search.sampler import BanditIdeaSampler

    ideas = ([_idea(i, Category.ATTENTION) for i in range(5)]
             + [_idea(i, Category.ACTIVATION) for i in range(5)]
             + [_idea(0, Category.NORMALIZATION)])
    sampler = BanditIdeaSampler(ideas, floor=0.3)
    stats = IdeaStats()
    rewards = {"activation-2": (20, 22)}  # one idea keeps beating its parent
    rewards.update({i.id: (0, 10) for i in ideas if i.id != "activation-2"})
    rng = np.random.default_rng(1)
    counts = Counter(sampler.draw(rng, stats, rewards=rewards).id for _ in range(3000))
    assert counts["activation-2"] > 0.6 * 3000
    cats = Counter(i.split("-")[0] for i in counts.elements())
    assert cats["normalization"] > 0.3 / 3 * 3000 * 0.8  # the floor share survives
    assert cats["attention"] > 0.3 / 3 * 3000 * 0.8
    import pytest

    with pytest.raises(ValueError):
        BanditIdeaSampler(ideas, floor=1.5)
