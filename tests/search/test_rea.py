"""Regularized evolution and random search: determinism, warm-up, tournament, ageing."""

from __future__ import annotations

import numpy as np
import pytest
from archlore.evaluator.records import Evaluation
from archlore.search.records import Candidate
from archlore.search.registry import STRATEGIES
from archlore.search.spaces.nb201 import NB201Space, parse_arch
from archlore.search.strategies.base import StrategyContext


def make(name: str, seed: int = 0, **options):
    return STRATEGIES.get(name)(StrategyContext(space=NB201Space(), seed=seed, options=options))


def told(cid: int, arch: str, val: float) -> Candidate:
    return Candidate(id=cid, arch=arch, status="evaluated", evaluation=Evaluation(
        status="ok", stage="eval", val_acc=val, test_acc=val, macs=1, params=1))


def drive(strategy, n: int, score=lambda a, i: (i * 37 % 101) / 101) -> list[str]:
    archs = []
    for i in range(n):
        (p,) = strategy.ask(1)
        archs.append(p.arch)
        strategy.tell(told(i, p.arch, score(p.arch, i)))
    return archs


@pytest.mark.parametrize("name", ["random", "rea"])
def test_deterministic_per_seed(name):
    assert drive(make(name, seed=3), 40) == drive(make(name, seed=3), 40)
    assert drive(make(name, seed=3), 40) != drive(make(name, seed=4), 40)


def test_warm_up_is_random_then_children_mutate_one_edge_of_a_member():
    rea = make("rea", population=5, sample=2)
    first = rea.ask(8)  # nothing told yet: only the warm-up can be proposed
    assert len(first) == 5 and all(p.operator == "random" for p in first)
    for i, p in enumerate(first):
        rea.tell(told(i, p.arch, 0.1 * i))
    members = {a for _, a, _ in rea.population}
    (child,) = rea.ask(1)
    assert child.operator == "mutate" and len(child.parents) == 1
    parent = first[child.parents[0]].arch
    assert parent in members
    assert sum(x != y for x, y in zip(parse_arch(child.arch), parse_arch(parent),
                                      strict=True)) == 1


def test_tournament_over_the_whole_population_picks_the_best():
    rea = make("rea", population=4, sample=4)
    ps = rea.ask(4)
    for i, p in enumerate(ps):
        rea.tell(told(i, p.arch, [0.2, 0.9, 0.5, 0.1][i]))
    for _ in range(5):
        (child,) = rea.ask(1)
        assert child.parents == [1]


def test_oldest_member_dies_not_the_worst():
    rea = make("rea", population=3, sample=2)
    ps = rea.ask(3)
    for i, p in enumerate(ps):
        rea.tell(told(i, p.arch, [0.99, 0.1, 0.2][i]))  # the oldest is the best
    c = rea.ask(1)[0]
    rea.tell(told(3, c.arch, 0.0))  # the newest is the worst
    assert [m[0] for m in rea.population] == [1, 2, 3]
    assert rea.removed == [0]
    dup = Candidate(id=4, arch=c.arch, status="duplicate")
    rea.tell(dup)  # duplicates do not join
    assert [m[0] for m in rea.population] == [1, 2, 3]


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="population"):
        make("rea", population=0)


def test_random_search_is_uniform_over_ops():
    rs = make("random", seed=1)
    archs = [p.arch for p in rs.ask(500)]
    assert len(set(archs)) > 480  # 15,625 cells: almost no repeats
    first_edge = [parse_arch(a)[0] for a in archs]
    assert max(np.unique(first_edge, return_counts=True)[1]) < 140
