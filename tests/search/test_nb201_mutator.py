"""The offline NB201 cell mutator: cell ops, placement without a hand-written prior, goals, determinism."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from archlore.agent.offline_nb201 import GROW_OPS, SHRINK_OPS, mutate_cell, structure_score
from archlore.knowledge.schema import Category, Idea
from archlore.search.protocol import Constraints, Goal, MutationRequest, Outcome, ParentInfo
from archlore.search.spaces.nb201 import NB201Space, format_arch, parse_arch

PARENT = format_arch(("nor_conv_1x1", "avg_pool_3x3", "none", "none", "nor_conv_3x3",
                      "avg_pool_3x3"))


def idea(*ops: str) -> Idea:
    return Idea(id="x", name="x", category=Category.BLOCK_TYPE, description="x",
                cell_ops=list(ops))


CIFAR = Constraints(dataset="cifar10", in_channels=3, num_classes=10, image_size=32)


def req(op="idea", parents=(PARENT,), ideas=None, seed=0, **kw) -> MutationRequest:
    kw.setdefault("constraints", CIFAR)
    return MutationRequest(operator=op, space="nb201", parents=[ParentInfo(arch=a) for a in parents],
                           idea=ideas, seed=seed, **kw)


def diff(a: str, b: str) -> list[tuple[str, str]]:
    return [(x, y) for x, y in zip(parse_arch(a), parse_arch(b), strict=True) if x != y]


@pytest.mark.parametrize("op, before, after", [
    ("add_conv3x3", None, "nor_conv_3x3"), ("add_conv1x1", None, "nor_conv_1x1"),
    ("add_avg_pool", None, "avg_pool_3x3"), ("add_skip", None, "skip_connect"),
    ("delete_layer", None, "none"), ("swap_conv1x1_to_conv3x3", "nor_conv_1x1", "nor_conv_3x3"),
    ("swap_pool_to_conv3x3", "avg_pool_3x3", "nor_conv_3x3"),
    ("remove_pool", "avg_pool_3x3", "skip_connect")])
def test_each_cell_op_changes_one_edge_as_it_says(op, before, after):
    for seed in range(10):
        res = mutate_cell(req(ideas=idea(op), seed=seed))
        assert res.error is None and res.mode == "offline" and res.code is None
        (change,) = diff(PARENT, res.arch)
        assert change[1] == after and (before is None or change[0] == before)


def test_placement_carries_no_hand_written_prior():
    # where an op goes is uniform over the places that keep the cell connected: no op or
    # edge is preferred (the prior lives in search.prior, computed from the ideas)
    n = 300
    parent = parse_arch(PARENT)
    where = Counter(next(e for e, (x, y) in enumerate(zip(parent, parse_arch(
        mutate_cell(req(ideas=idea("add_skip"), seed=s)).arch), strict=True)) if x != y)
        for s in range(n))
    places = [e for e, op in enumerate(parse_arch(PARENT)) if op != "skip_connect"]
    assert len(where) == len(places)
    assert max(where.values()) - min(where.values()) < 0.15 * n
    assert structure_score(parse_arch(PARENT)) == 0.0
    assert structure_score(("none",) * 6) < 0
    import archlore.agent.offline_nb201 as m

    for name in ("CAPACITY", "RESIDUAL_BONUS", "DEPTH_BONUS", "prior_score"):
        assert not hasattr(m, name)


def test_deterministic_per_seed():
    a = [mutate_cell(req(ideas=idea("add_conv3x3"), seed=s)).arch for s in range(30)]
    b = [mutate_cell(req(ideas=idea("add_conv3x3"), seed=s)).arch for s in range(30)]
    assert a == b and len(set(a)) > 1


def test_duplicate_feedback_widens_the_step():
    fb = [Outcome(candidate_id=3, operator="idea", verdict="duplicate", duplicate_of=1)] * 5
    plain = {mutate_cell(req(ideas=idea("add_conv3x3"), seed=s)).arch for s in range(40)}
    wide = [mutate_cell(MutationRequest(
        operator="idea", space="nb201", parents=[ParentInfo(arch=PARENT, history=fb)],
        idea=idea("add_conv3x3"), seed=s)).arch for s in range(40)]
    assert len(set(wide)) > len(plain)
    assert max(len(diff(PARENT, w)) for w in wide) > 1


def test_pareto_goals_respect_the_stated_bound():
    space = NB201Space()
    parent_m = space.macs(PARENT) / 1e6
    for seed in range(10):
        cut = mutate_cell(req(op="pareto", seed=seed, goal=Goal(
            improve="macs", direction="min", budgets={"macs": parent_m * 1e6 - 1},
            floors={"val_acc": 0.8})))
        assert space.macs(cut.arch) / 1e6 < parent_m
        grow = mutate_cell(req(op="pareto", seed=seed, goal=Goal(
            improve="val_acc", direction="max", budgets={"macs": parent_m * 1.3e6},
            reason="this parent is among the cheapest")))
        assert space.macs(grow.arch) / 1e6 <= parent_m * 1.3
        assert grow.notes.split(":")[0] in GROW_OPS and cut.notes.split(":")[0] in SHRINK_OPS


def test_user_mac_cap_is_respected():
    cap = NB201Space().macs(PARENT) / 1e6 + 1
    c = Constraints(dataset="cifar10", in_channels=3, num_classes=10, image_size=32, max_mmacs=cap)
    for seed in range(10):
        res = mutate_cell(req(ideas=idea("add_conv3x3", "add_conv3x3"), seed=seed, constraints=c))
        assert NB201Space().macs(res.arch) <= cap * 1e6


def test_crossover_refine_init_repair():
    other = format_arch(("nor_conv_3x3",) * 6)
    for seed in range(10):
        x = mutate_cell(req(op="crossover", parents=(PARENT, other), seed=seed)).arch
        assert x not in (PARENT, other)
        assert all(c in (p, o) for c, p, o in zip(parse_arch(x), parse_arch(PARENT),
                                                   parse_arch(other), strict=True))
        assert len(diff(PARENT, mutate_cell(req(op="refine", seed=seed)).arch)) == 1
        assert mutate_cell(req(op="init", parents=(), seed=seed)).arch
    fixed = mutate_cell(req(op="repair", parents=(PARENT.replace("|", " |", 2) + "junk",)))
    assert fixed.arch == PARENT
    bad = mutate_cell(req(op="idea", parents=("|nope~0|",), ideas=idea("add_skip")))
    assert bad.arch is None and "3 '+'-separated nodes" in bad.error


def test_general_offline_mutator_delegates_nb201():
    from archlore.agent.offline import OfflineMutator

    r = req(ideas=idea("add_conv3x3", "add_skip"), seed=7)
    assert OfflineMutator().mutate(r).arch == mutate_cell(r).arch


def test_never_reads_the_benchmark_table():
    src = Path(__file__).resolve().parents[2] / "agent" / "offline_nb201.py"
    text = src.read_text()
    assert "nb201_table" not in text and "NB201Table" not in text and ".csv" not in text


def test_fairnad_grow_goal_is_read_as_grow():
    """FairNAD's accuracy goal for a cheap parent is a typed grow goal with a MACs budget
    (it once was a sentence, and "among the cheapest" in it was read as shrink)."""
    from archlore.agent.offline_nb201 import NB201OfflineMutator
    from archlore.evaluator.records import Evaluation
    from archlore.search.records import Candidate
    from archlore.search.strategies.base import StrategyContext
    from archlore.search.strategies.fairnad import FairNAD

    space = NB201Space()
    strat = FairNAD(StrategyContext(space=space, constraints=CIFAR,
                                    mutator=NB201OfflineMutator(), knowledge=[]))
    cheap = format_arch(("nor_conv_1x1", "none", "none", "none", "none", "skip_connect"))
    for cid, (arch, acc) in enumerate([(cheap, 0.6), (PARENT, 0.8)]):
        strat.tell(Candidate(id=cid, arch=arch, status="evaluated", evaluation=Evaluation(
            status="ok", stage="eval", val_acc=acc, macs=space.macs(arch))))
    assert strat.front == [0, 1]
    goal, _ = strat._pareto_goal(0)
    # budget: the next front member's MACs, or twice the parent's if that is tighter
    assert goal.adds_capacity and goal.budgets == {
        "macs": float(min(space.macs(PARENT), 2 * space.macs(cheap)))}
    assert not strat._pareto_goal(1)[0].adds_capacity
    for seed in range(5):
        res = mutate_cell(req(op="pareto", parents=(cheap,), seed=seed, goal=goal))
        assert res.notes.split(":")[0] in GROW_OPS, res.notes
        assert space.macs(res.arch) >= space.macs(cheap)  # add_skip keeps MACs
