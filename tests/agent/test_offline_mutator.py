"""OfflineMutator: every applicable corpus idea x every seed parent gives a valid candidate on
digits (1x8x8) and CIFAR-shaped (3x32x32) input; operators follow their documented conventions."""

from __future__ import annotations

import pytest
import torch
from archlore.agent.offline import OfflineMutator, parent_spec
from archlore.corpora import load_builtin_ideas
from archlore.evaluator.cascade import build_model, check_shape, count_macs, count_params
from archlore.evaluator.policy import check_source
from archlore.evaluator.records import Evaluation
from archlore.search.protocol import (
    Constraints,
    Failure,
    Goal,
    MutationRequest,
    Mutator,
    Outcome,
    ParentInfo,
)
from archlore.search.spaces.open import ArchSpec, OpenSpace, apply_edits, render

DIGITS = Constraints()
CIFAR = Constraints(dataset="cifar10", in_channels=3, image_size=32)
CPU = torch.device("cpu")
IDEAS = {i.id: i for i in load_builtin_ideas()}
APPLICABLE = [i for i in IDEAS.values() if i.edits]
MUT = OfflineMutator()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _parent(spec: ArchSpec) -> ParentInfo:
    return ParentInfo(code=render(spec), arch=spec.to_json())


def _valid(code: str, c: Constraints) -> torch.nn.Module:
    """What the evaluator's policy + build + shape stages check, run in-process."""
    assert check_source(code) == [], check_source(code)[:3]
    model = build_model(code, c.num_classes, c.in_channels)
    check_shape(model, (c.in_channels, c.image_size, c.image_size), c.num_classes, CPU)
    return model


@pytest.mark.parametrize("c", [DIGITS, CIFAR], ids=["digits-1x8x8", "cifar-3x32x32"])
def test_every_applicable_idea_gives_a_valid_child_from_every_seed(c):
    seeds = OpenSpace().seeds(c)
    produced = 0
    for idea in APPLICABLE:
        for k, seed in enumerate(seeds):
            req = MutationRequest(operator="idea", idea=idea, parents=[_parent(seed)],
                                  constraints=c, seed=k)
            res = MUT.mutate(req)
            if res.error is not None:
                # the only accepted refusal: the parent already has the idea
                assert res.error.startswith("no-op:"), (idea.id, seed.name, res.error)
                assert apply_edits(seed, idea.edits).key() == seed.key()
                continue
            assert res.mode == "offline" and res.code and idea.id in res.notes
            _valid(res.code, c)
            child = ArchSpec.from_json(res.arch)
            assert ArchSpec.from_code(res.code) == child
            assert child.key() == apply_edits(seed, idea.edits).key()  # no caps: edits as given
            produced += 1
    assert produced >= 0.85 * len(APPLICABLE) * len(seeds)


def test_ideas_without_edits_are_refused_clearly():
    idea = IDEAS["mixup"]
    res = MUT.mutate(MutationRequest(operator="idea", idea=idea,
                                     parents=[_parent(OpenSpace().seeds()[0])]))
    assert res.code is None and "has no edits" in res.error


def test_is_a_mutator_and_deterministic_given_the_seed():
    assert isinstance(MUT, Mutator) and MUT.name == "offline"
    parent = _parent(OpenSpace().seeds()[1])
    for op in ("random", "refine", "pareto"):
        a = [MUT.mutate(MutationRequest(operator=op, parents=[parent], seed=s)).code for s in range(4)]
        b = [MUT.mutate(MutationRequest(operator=op, parents=[parent], seed=s)).code for s in range(4)]
        assert a == b and len(set(a)) >= 2, op


def test_init_cycles_through_the_seed_nets():
    names = {ArchSpec.from_code(MUT.mutate(MutationRequest(operator="init", seed=s)).code).name
             for s in range(4)}
    assert names == {s.name for s in OpenSpace().seeds()}


def test_idea_children_respect_the_caps():
    c = DIGITS.model_copy(update={"max_mmacs": 0.5, "max_params": 60_000})
    parent = _parent(OpenSpace().seeds(c)[1])
    for idea_id in ("compound-scaling", "wide-residual", "extra-stage", "bottleneck-transformer"):
        res = MUT.mutate(MutationRequest(operator="idea", idea=IDEAS[idea_id], parents=[parent],
                                         constraints=c))
        model = _valid(res.code, c)
        assert count_macs(model, (1, 8, 8)) <= 0.5e6 and count_params(model) <= 60_000
        assert "shrunk to fit the caps" in res.notes or idea_id == "bottleneck-transformer"


GROW = Goal(improve="val_acc", direction="max")
SHRINK = Goal(improve="macs", direction="min", floors={"val_acc": 0.9})


def test_pareto_grow_and_shrink_follow_the_goal():
    space = OpenSpace()
    c = DIGITS.model_copy(update={"max_mmacs": 2.0})
    parent_spec_ = space.seeds(c)[2]
    macs = space.estimate_macs(parent_spec_, c)
    parent = _parent(parent_spec_)
    for seed in range(3):
        grown = MUT.mutate(MutationRequest(operator="pareto", goal=GROW, parents=[parent],
                                           constraints=c, seed=seed))
        g = space.estimate_macs(ArchSpec.from_json(grown.arch), c)
        assert "pareto grow" in grown.notes and macs <= g <= 2e6 and grown.move
        assert not grown.applied_idea
        shrunk = MUT.mutate(MutationRequest(operator="pareto", goal=SHRINK, parents=[parent],
                                            constraints=c, seed=seed))
        assert "pareto shrink" in shrunk.notes
        assert space.estimate_macs(ArchSpec.from_json(shrunk.arch), c) < macs
    # a budget in the goal tightens the cap -- also a large one (once formatted 1.2e+04 and
    # read back as 1.2 from prose)
    tight = MUT.mutate(MutationRequest(operator="pareto", goal=GROW.model_copy(
        update={"budgets": {"macs": macs * 1.05}}), parents=[parent], constraints=c))
    assert space.estimate_macs(ArchSpec.from_json(tight.arch), c) <= macs * 1.05
    huge = MUT.mutate(MutationRequest(operator="pareto", goal=GROW.model_copy(
        update={"budgets": {"macs": 1.234e10}}), parents=[parent], constraints=c.model_copy(
            update={"max_mmacs": None})))
    assert space.estimate_macs(ArchSpec.from_json(huge.arch), c) >= macs
    # no keyword: a parent at >= half the cap is shrunk, a cheap one grown
    near_cap = ParentInfo(code=parent.code, evaluation=Evaluation(status="ok", stage="eval", macs=1_500_000))
    res = MUT.mutate(MutationRequest(operator="pareto", parents=[near_cap], constraints=c))
    assert "pareto shrink" in res.notes
    cheap = ParentInfo(code=parent.code, evaluation=Evaluation(status="ok", stage="eval", macs=macs))
    assert "pareto grow" in MUT.mutate(MutationRequest(operator="pareto", parents=[cheap],
                                                       constraints=c)).notes


def test_refine_reads_the_feedback_convention():
    parent = _parent(OpenSpace().seeds()[1])
    def outcome(move, verdict):
        return Outcome(candidate_id=1, operator="refine", move=move, verdict=verdict)

    worse = ParentInfo(code=parent.code, history=[outcome("deeper", "better"),
                                                  outcome("wider", "worse")])
    res = MUT.mutate(MutationRequest(operator="refine", parents=[worse]))
    assert res.move == "narrower" and "undoing wider" in res.notes
    better = ParentInfo(code=parent.code, history=[outcome("deeper", "better")])
    res = MUT.mutate(MutationRequest(operator="refine", parents=[better]))
    assert res.move == "deeper" and "repeating" in res.notes
    child = ArchSpec.from_code(res.code)
    assert child.total_blocks() == ArchSpec.from_code(parent.code).total_blocks() + 1


def test_crossover_combines_two_parents():
    space = OpenSpace()
    a, b = space.seeds()[1], space.seeds()[3]
    res = MUT.mutate(MutationRequest(operator="crossover", parents=[_parent(a), _parent(b)], seed=3))
    child = ArchSpec.from_json(res.arch)
    assert child.key() not in (a.key(), b.key())
    assert all(s in a.stages + b.stages for s in child.stages)
    _valid(res.code, DIGITS)
    one = MUT.mutate(MutationRequest(operator="crossover", parents=[_parent(a)]))
    assert one.code is None and "two parents" in one.error


def test_repair_shrinks_an_over_cap_child_under_the_cap():
    space = OpenSpace()
    big = apply_edits(space.seeds(CIFAR)[1], IDEAS["wide-residual"].edits)
    c = CIFAR.model_copy(update={"max_mmacs": 5.0})
    assert space.estimate_macs(big, c) > 5e6
    res = MUT.mutate(MutationRequest(operator="repair", parents=[_parent(big)], constraints=c,
                                     failure=Failure(status="rejected", stage="cost",
                                                     reason="61.2 MMACs exceeds max_mmacs=5.0")))
    model = _valid(res.code, c)
    assert count_macs(model, (3, 32, 32)) <= 5e6 and "repair" in res.notes
    # a timeout with an estimate already under the cap still gets cheaper
    small = space.seeds(c)[0]
    res = MUT.mutate(MutationRequest(operator="repair", parents=[_parent(small)], constraints=c,
                                     failure=Failure(status="timeout", stage="train",
                                                     reason="after 300 s")))
    assert space.estimate_macs(ArchSpec.from_json(res.arch), c) < space.estimate_macs(small, c)


def test_repair_of_other_errors_reverts_to_the_parent():
    space = OpenSpace()
    parent = space.seeds()[1]
    broken = ParentInfo(code="class Net: pass  # hand-written, no spec")
    res = MUT.mutate(MutationRequest(operator="repair", parents=[broken, _parent(parent)],
                                     failure=Failure(status="failed", stage="shape",
                                                     reason="RuntimeError: shapes do not match")))
    assert "reverted to the parent" in res.notes
    child = ArchSpec.from_json(res.arch)
    assert child.key() != parent.key()
    _valid(res.code, DIGITS)


def test_impossible_caps_and_unknown_inputs_give_errors_not_code():
    parent = _parent(OpenSpace().seeds()[1])
    res = MUT.mutate(MutationRequest(operator="idea", idea=IDEAS["squeeze-excitation"],
                                     parents=[parent],
                                     constraints=DIGITS.model_copy(update={"max_mmacs": 1e-6})))
    assert res.code is None and "cannot fit caps" in res.error
    assert "unknown space" in MUT.mutate(MutationRequest(operator="init", space="imagenet")).error
    assert "needs request.idea" in MUT.mutate(MutationRequest(operator="idea")).error


def test_parent_without_spec_starts_from_a_seed():
    llm_code = "import torch.nn as nn\nclass Net(nn.Module):\n    pass\n"
    assert parent_spec(ParentInfo(code=llm_code)) is None
    res = MUT.mutate(MutationRequest(operator="idea", idea=IDEAS["gelu"],
                                     parents=[ParentInfo(code=llm_code)]))
    assert "parent has no ArchSpec" in res.notes and ArchSpec.from_code(res.code).act == "gelu"


def test_nb201_requests_are_delegated():
    pytest.importorskip("archlore.agent.offline_nb201")
    from archlore.agent.offline_nb201 import mutate_cell

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    req = MutationRequest(operator="idea", space="nb201", idea=IDEAS["identity-shortcut"],
                          parents=[ParentInfo(arch=arch)], seed=4)
    assert MUT.mutate(req) == mutate_cell(req)


def test_refine_sees_the_move_through_fairnad_feedback():
    """The typed Outcome FairNAD hands over carries the child's move and verdict; a refine
    repeats a move that made a better child and undoes one that made a worse child."""
    from archlore.search.feedback import outcome
    from archlore.search.objectives import get_objectives
    from archlore.search.records import Candidate

    objectives = get_objectives(["val_acc", "macs"])
    parent = _parent(OpenSpace().seeds()[1])
    for seed in range(40):  # a move that can be made again (deeper / wider)
        child = MUT.mutate(MutationRequest(operator="refine",
                                           parents=[ParentInfo(code=parent.code)], seed=seed))
        if child.move in ("deeper", "wider"):
            break
    assert child.move in ("deeper", "wider"), child.notes
    hi = Evaluation(status="ok", stage="eval", val_acc=0.93, macs=2_000_000, params=10)
    lo = Evaluation(status="ok", stage="eval", val_acc=0.90, macs=1_500_000, params=8)
    for child_ev, parent_ev, expect in ((hi, lo, "repeating"), (lo, hi, "undoing")):
        c = Candidate(id=4, operator="refine", move=child.move, code=child.code,
                      status="evaluated", evaluation=child_ev)
        p = Candidate(id=2, operator="init", status="evaluated", evaluation=parent_ev)
        line = outcome(c, p, objectives)
        assert line.move == child.move and line.delta["val_acc"] == pytest.approx(
            child_ev.val_acc - parent_ev.val_acc)
        res = MUT.mutate(MutationRequest(operator="refine",
                                         parents=[ParentInfo(code=child.code, history=[line])]))
        assert f"{expect} {child.move}" in res.notes, res.notes
