"""The knowledge prior over cell ops (from ideas, not hand-set) and its evidence updates."""

from __future__ import annotations

import numpy as np
import pytest
from archlore.corpora import load_builtin_ideas
from archlore.knowledge.schema import Category, Direction, Effect, Idea, Provenance
from archlore.search.prior import CellModel, OpPrior, features, prior_order
from archlore.search.spaces.nb201 import OPS, parse_arch


def _idea(i: str, ops: list[str], acc: Direction, papers: int = 1) -> Idea:
    return Idea(id=i, name=i, category=Category.BLOCK_TYPE, description="x", cell_ops=ops,
                effect=Effect(accuracy=acc),
                provenance=[Provenance(paper_id=f"p{k}") for k in range(papers)])


def test_values_come_from_the_ideas_effects_and_provenance():
    p = OpPrior.from_ideas([_idea("a", ["add_avg_pool"], Direction.UP, papers=3),
                            _idea("b", ["swap_conv1x1_to_conv3x3"], Direction.UP),
                            _idea("c", ["delete_layer"], Direction.DOWN),
                            _idea("d", ["add_skip"], Direction.UNKNOWN)])
    assert p.values["avg_pool_3x3"] == 3 / 4  # weight 3 (supporting papers) + 1 pseudo-vote
    assert p.values["nor_conv_3x3"] == 1 / 2 and p.values["nor_conv_1x1"] == -1 / 2
    assert p.values["none"] == -1 / 2 and p.values["skip_connect"] == 0.0  # unknown: no vote
    assert [i for i, *_ in p.votes["avg_pool_3x3"]] == ["a"]
    assert OpPrior.flat().values == dict.fromkeys(OPS, 0.0)


def test_builtin_corpus_prior_is_what_the_docs_say():
    v = OpPrior.from_ideas(load_builtin_ideas()).values
    order = sorted(OPS, key=lambda o: -v[o])
    assert order == ["nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    assert round(v["nor_conv_3x3"], 3) == 0.765 and round(v["avg_pool_3x3"], 3) == 0.333


def test_features_count_live_edges_only():
    cell = ("nor_conv_3x3", "none", "none", "none", "skip_connect", "avg_pool_3x3")
    x = features(cell)  # 2<-1 and 3<-2 are dead: node 2 is unreachable
    assert x[0] == 1 and x[1 + OPS.index("nor_conv_3x3")] == 1
    assert x[1 + OPS.index("avg_pool_3x3")] == 0 and x[1 + OPS.index("skip_connect")] == 1


def test_evidence_overrides_a_misleading_prior_and_the_prior_weight_decays():
    prior = OpPrior.from_ideas(load_builtin_ideas())  # says conv3x3 >> avg_pool
    model = CellModel(prior)
    conv, pool = ("nor_conv_3x3",) * 6, ("avg_pool_3x3",) * 6
    assert model.mean_score(conv) > model.mean_score(pool)
    assert model.prior_weight() == 1.0
    rng = np.random.default_rng(0)
    for _ in range(60):  # a task where pooling is what works
        cell = tuple(OPS[k] for k in rng.integers(0, 5, 6))
        model.observe(cell, sum(op == "avg_pool_3x3" for op in cell) + 0.1 * rng.normal())
    assert model.mean_score(pool) > model.mean_score(conv)
    assert model.prior_weight() < 0.25
    a = CellModel.score_with(model.sample(np.random.default_rng(3)), [conv, pool])
    b = CellModel.score_with(model.sample(np.random.default_rng(3)), [conv, pool])
    assert np.array_equal(a, b)


def test_prior_order_starts_with_the_prior_best_cell():
    order = prior_order(OpPrior.from_ideas(load_builtin_ideas()))
    assert len(order) == len(set(order)) == 5 ** 6
    assert parse_arch(order[0]) == ("nor_conv_3x3",) * 6
    flat = prior_order(OpPrior.flat())
    assert flat == sorted(flat)  # all ties: canonical string order


def test_a_prior_the_evidence_contradicts_loses_its_weight_one_that_agrees_keeps_it():
    prior = OpPrior.from_ideas(load_builtin_ideas())
    rng = np.random.default_rng(1)
    cells = [tuple(OPS[k] for k in rng.integers(0, 5, 6)) for _ in range(12)]
    plain = CellModel(prior)
    wrong, right = CellModel(prior, adaptive=True), CellModel(prior, adaptive=True)
    for cell in cells:
        s = CellModel(prior).mean_score(cell)  # the prior's own score of the cell
        plain.observe(cell, -s)
        wrong.observe(cell, -s)  # a task where the prior points the wrong way
        right.observe(cell, s + 0.01 * rng.normal())
    assert wrong.agreement() < -0.9 and right.agreement() > 0.9
    assert plain.agreement() < -0.9 and plain.prior_factor() == 1.0  # checked only if adaptive
    assert wrong.prior_factor() == pytest.approx(1e-3)
    assert right.prior_factor() > 0.9
    assert wrong.prior_weight() < plain.prior_weight() - 0.05
    # with the contradicted prior gone the posterior follows the evidence further
    conv, pool = ("nor_conv_3x3",) * 6, ("avg_pool_3x3",) * 6
    assert (wrong.mean_score(pool) - wrong.mean_score(conv)
            > plain.mean_score(pool) - plain.mean_score(conv))
    # a model that fits explores less: estimated noise shrinks the posterior
    assert np.trace(right._posterior()[1]) < np.trace(CellModel(prior)._posterior()[1])
    fresh = CellModel(prior, adaptive=True)
    assert fresh.agreement() == 1.0 and fresh.prior_factor() == 1.0  # too few tells to judge
