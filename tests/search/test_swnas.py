"""SWNAS: discretisations, node importance, edits/advisor, the DARTS loop and the strategy.

All searches here are tiny (4 channels, 8x8 synthetic images, <= 2 epochs): they test
behaviour (determinism, masking, validity), not search quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from archlore.search.spaces.nb201 import EDGES, OPS, canonical, connected, parse_arch
from archlore.search.swnas import discretize, importance
from archlore.search.swnas.advisor import advise
from archlore.search.swnas.darts import SearchData, run_search
from archlore.search.swnas.messages import (
    EDGE_LABELS,
    AddNode,
    AdvisorAnswer,
    MaskOp,
    PreferOp,
    SearchResult,
    SearchSettings,
    StructuralSignals,
    apply_edits,
    render_signals,
    validate_edits,
)
from archlore.search.swnas.supernet import Supernet

SKIP, C3, C1, NONE = (OPS.index(o) for o in ("skip_connect", "nor_conv_3x3", "nor_conv_1x1",
                                             "none"))
TINY = dict(epochs=2, cells=1, channels=4, n_train=64, n_val=64, n_signal=32, batch_size=32,
            image_size=8)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as the searches use: on a shared CPU more threads mostly spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _signals(alpha, op_imp, nodes, masked=None, trend=None) -> StructuralSignals:
    masked = masked or [[False] * 5 for _ in EDGES]
    return StructuralSignals(epoch=4, window=2, alpha=alpha, alpha_trend=trend or
                             [[0.0] * 5 for _ in EDGES], op_importance=op_imp,
                             node_importance=nodes, node_trend=[0.0] * 4, masked=masked)


def _collapsed() -> StructuralSignals:
    """DARTS's NB201 failure as signals: skip holds the top alpha everywhere, while removing a
    3x3 conv hurts the supernet more than removing skip; node 2 is unused."""
    alpha = [[0.1, 0.5, 0.1, 0.2, 0.1] for _ in EDGES]
    op_imp = [[0.0, 0.02, 0.01, 0.08, 0.0] for _ in EDGES]
    return _signals(alpha, op_imp, [1.0, 0.6, 0.0, 1.0])


def _data(n=64, size=8, seed=0) -> SearchData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, 2 * n)
    x = rng.standard_normal((2 * n, 3, size, size)).astype(np.float32)
    x[np.arange(2 * n), y % 3, : size // 2] += 2.0  # a learnable signal
    return SearchData(x[:n], y[:n], x[n:], y[n:], 10)


# --- discretisation ---------------------------------------------------------------------------

def test_synergistic_avoids_the_skip_collapse_argmax_falls_into():
    sig = _collapsed()
    argmax = discretize.derive_all(sig)["argmax"][0]
    syn = discretize.derive_all(sig)["synergistic"][0]
    assert parse_arch(argmax) == ("skip_connect",) * 6
    cell = parse_arch(syn)
    # edges touching the unused node 2 are pruned; the others take the measured 3x3 conv
    for (i, j), op in zip(EDGES, cell, strict=True):
        assert op == ("none" if 2 in (i, j) else "nor_conv_3x3"), (i, j, op)
    assert connected(cell) and canonical(syn) == syn


def test_lambda_interpolates_between_alpha_and_measurement():
    sig = _collapsed()
    sig = sig.model_copy(update={"node_importance": [1.0, 1.0, 1.0, 1.0]})
    assert set(parse_arch(discretize.derive_all(sig, lam=0.0)["synergistic"][0])) == {"skip_connect"}
    assert set(parse_arch(discretize.derive_all(sig, lam=1.0)["synergistic"][0])) == {"nor_conv_3x3"}


def test_synergistic_ranking_is_connected_distinct_canonical_and_respects_masks():
    masked = [[False] * 5 for _ in EDGES]
    masked[0][C3] = True
    sig = _collapsed().model_copy(update={"masked": masked})
    for method, ranked in discretize.derive_all(sig, k=15).items():
        assert len(ranked) == len(set(ranked)) == 15, method
        for arch in ranked:
            assert canonical(arch) == arch
            assert parse_arch(arch)[0] != "nor_conv_3x3", (method, arch)
    assert all(connected(parse_arch(a)) for a in discretize.derive_all(sig)["synergistic"])


def test_preference_factor_changes_the_choice():
    sig = _collapsed().model_copy(update={"node_importance": [1.0] * 4})
    prefer = np.ones((6, 5))
    prefer[5, SKIP] = 4.0
    cell = parse_arch(discretize.derive_all(sig, prefer=prefer.tolist())["synergistic"][0])
    assert cell[5] == "skip_connect" and cell[4] == "nor_conv_3x3"


# --- importance -------------------------------------------------------------------------------

def test_node_with_masked_inputs_gets_zero_importance():
    torch.manual_seed(0)
    net = Supernet(channels=4, cells=1)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[0, :] = False
    mask[0, NONE] = True  # node 1's only input edge (1<-0) keeps 'none' only
    w = net.mixing_weights(mask)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 10, (32,))
    imp = importance.node_importance(net, w, x, y)
    assert imp[1] == 0.0 and imp[0] == imp[3] == 1.0
    base = importance.loss(net, w, x, y)
    for n, matters in ((1, False), (2, True)):  # node 2 is fed by node 0 and does matter
        scale = torch.ones(4)
        scale[n] = 0.0
        assert (importance.loss(net, w, x, y, scale) != base) == matters
    d = importance.op_importance(net, w, x, y)
    assert all(v == 0.0 for v in d[0])  # masked ops and none: nothing to remove


# --- edits, advisor, messages -----------------------------------------------------------------

def test_validate_edits_accepts_and_rejects_with_reasons():
    sig = _collapsed()
    edits = [MaskOp(edge="1<-0", op="skip_connect"), MaskOp(edge="1<-0", op="skip_connect"),
             PreferOp(edge="3<-1", op="nor_conv_1x1", strength=2.0),
             PreferOp(edge="1<-0", op="skip_connect"), AddNode(after=1, op="nor_conv_3x3")]
    ok, bad = validate_edits(edits, sig)
    assert ok == [edits[0], edits[2]]
    reasons = [r for _, r in bad]
    assert "duplicate" in reasons[0] and "already masked" in reasons[1]
    assert "open space" in reasons[2]
    # masking every op of an edge, or every path to the output, is refused
    ok, bad = validate_edits([MaskOp(edge="1<-0", op=o) for o in OPS], sig)
    assert len(ok) == 4 and "no op" in bad[0][1]
    cut = [MaskOp(edge=e, op=o) for e in ("1<-0", "2<-0", "3<-0") for o in OPS if o != "none"]
    ok, bad = validate_edits(cut, sig)
    assert len(ok) == len(cut) - 1 and "connected" in bad[0][1]
    mask, prefer = apply_edits(ok, torch.ones(6, 5, dtype=torch.bool), np.ones((6, 5)))
    assert int((~mask).sum()) == len(ok) and prefer.max() == 1.0


def test_rule_advisor_masks_overcredited_skip_and_keeps_the_shortcut():
    edits = advise(_collapsed())
    masks = [e for e in edits if isinstance(e, MaskOp)]
    assert {m.edge for m in masks} == set(EDGE_LABELS) - {"3<-0"}
    assert all(m.op == "skip_connect" and m.reason for m in masks)
    prefs = [e for e in edits if isinstance(e, PreferOp)]
    assert prefs and all(p.op == "nor_conv_3x3" for p in prefs)
    assert all(p.edge.startswith(("1<-", "3<-")) for p in prefs)  # nodes 1, 3 are important
    assert advise(_collapsed()) == edits  # deterministic
    ok, bad = validate_edits(edits, _collapsed())
    assert ok == edits and not bad
    # no collapse, no masks: skip on top of two edges only
    calm = _collapsed().model_copy(update={"alpha": [[0.1, 0.2, 0.1, 0.5, 0.1]] * 4 +
                                                    [[0.1, 0.5, 0.1, 0.2, 0.1]] * 2})
    assert not [e for e in advise(calm) if isinstance(e, MaskOp)]


def test_render_signals_and_answer_schema_for_an_llm():
    masked = [[False] * 5 for _ in EDGES]
    masked[2][SKIP] = True
    text = render_signals(_collapsed().model_copy(update={"masked": masked}))
    assert all(label in text for label in EDGE_LABELS) and "masked" in text
    assert len(text) < 2500
    schema = AdvisorAnswer.model_json_schema()
    assert "edits" in schema["properties"]
    raw = ('{"edits": [{"kind": "mask_op", "edge": "2<-1", "op": "skip_connect"},'
           ' {"kind": "prefer_op", "edge": "3<-2", "op": "nor_conv_3x3", "strength": 2}],'
           ' "rationale": "skip dominates"}')
    ans = AdvisorAnswer.model_validate_json(raw)
    assert isinstance(ans.edits[0], MaskOp) and isinstance(ans.edits[1], PreferOp)
    with pytest.raises(ValueError):
        AdvisorAnswer.model_validate_json('{"edits": [{"kind": "mask_op", "edge": "4<-0", '
                                          '"op": "skip_connect"}]}')


# --- the DARTS loop ---------------------------------------------------------------------------

def test_search_is_deterministic_per_seed_and_derives_valid_cells():
    data = _data()
    a = run_search(SearchSettings(seed=3, **TINY), data)
    b = run_search(SearchSettings(seed=3, **TINY), data)
    c = run_search(SearchSettings(seed=4, **TINY), data)
    assert a.alpha_history == b.alpha_history and a.cells == b.cells
    assert a.alpha_history != c.alpha_history
    assert len(a.alpha_history) == TINY["epochs"] and len(a.node_history[0]) == 4
    assert a.alpha_history[-1] != a.alpha_history[0]  # alpha was trained
    for ranked in a.cells.values():
        assert all(canonical(x) == x for x in ranked)
    # the progressive cell: one commit per edge, connected, first in its own ranking
    assert [t["edge"] for t in a.progressive_trace] != [] and len(a.progressive_trace) == 6
    assert connected(parse_arch(a.cells["progressive"][0]))
    assert len(set(a.cells["progressive"])) == len(a.cells["progressive"])


def test_advisor_edits_shrink_the_space_during_the_search():
    calls = []

    def advisor(sig: StructuralSignals):
        calls.append(sig.epoch)
        return [MaskOp(edge="1<-0", op="skip_connect"), AddNode(after=0, op="none")]

    s = SearchSettings(seed=0, advise_every=1, advisor="test", **{**TINY, "epochs": 3})
    res = run_search(s, _data(), advisor)
    assert calls == [1, 2]  # not after the last epoch
    assert res.edits[0]["accepted"][0]["edge"] == "1<-0" and res.edits[0]["rejected"]
    assert res.edits[1]["rejected"][0]["reason"].endswith("already masked on 1<-0")
    assert res.final.masked[0][SKIP] and res.alpha_history[-1][0][SKIP] == 0.0
    for ranked in res.cells.values():
        assert all(parse_arch(x)[0] != "skip_connect" for x in ranked)


# --- the strategy -----------------------------------------------------------------------------

def _ctx(tmp_path, seed=0, **opts):
    from archlore.search.spaces.nb201 import NB201Space
    from archlore.search.strategies.base import StrategyContext

    options = {"dataset": "synthetic", **TINY, "max_proposals": 4,
               "cache_dir": str(tmp_path), **opts}
    return StrategyContext(space=NB201Space(), seed=seed, options=options)


def test_strategy_proposes_ranked_cells_deterministically_and_resumes_from_cache(tmp_path):
    from archlore.search.swnas.strategy import SWNASStrategy

    s1 = SWNASStrategy(_ctx(tmp_path, seed=1))
    first = s1.ask(3) + s1.ask(3)
    archs = [p.arch for p in first]
    assert len(archs) == 4 == len(set(archs)) and s1.ask(1) == []  # max_proposals
    assert all(canonical(a) == a for a in archs) and "swnas" in first[0].notes
    assert archs == s1.result.cells["synergistic"][:4]
    assert s1.stats()["advisor"] == "rules" and not s1.stats()["cache_hit"]
    s2 = SWNASStrategy(_ctx(tmp_path, seed=1))  # resume: two proposals stored
    s2.replay(None)
    s2.replay(None)
    assert s2.result is None  # replay does not search
    assert [p.arch for p in s2.ask(2)] == archs[2:]
    assert s2.stats()["cache_hit"]
    with pytest.raises(ValueError):
        SWNASStrategy(_ctx(tmp_path, bogus=1))


TABLE = Path("/work/shared/data/nb201.csv")
if not TABLE.is_file():
    TABLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "nb201.csv"


@pytest.mark.skipif(not TABLE.is_file(), reason="NAS-Bench-201 table not found")
def test_engine_runs_and_resumes_a_swnas_search(tmp_path):
    import archlore.search.swnas.strategy  # noqa: F401 - registers "swnas"
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search
    from archlore.search.store import RunStore

    opts = {"dataset": "synthetic", **TINY, "max_proposals": 3,
            "cache_dir": str(tmp_path / "cache")}
    cfg = SearchConfig(name="sw", space="nb201", strategy="swnas", dataset="cifar10",
                       table=str(TABLE), budget=3, options=opts)
    res = run_search(cfg, tmp_path, write_outputs=False)
    assert res.counts["evaluated"] == 3 and res.status == "finished"
    cands = RunStore(tmp_path / "sw", create=False).candidates()
    cached = SearchResult.model_validate_json(next((tmp_path / "cache").glob("*.json")).read_text())
    assert [c.arch for c in cands] == cached.cells["synergistic"][:3]
    again = run_search(cfg, tmp_path, resume=True, write_outputs=False)
    assert again.status == "finished" and again.counts["candidates"] == 3


# --- progressive synergistic discretisation -----------------------------------------------------

def _uniform_w() -> np.ndarray:
    return np.full((6, 5), 0.2)


def test_commit_moves_the_edge_mass_onto_the_op():
    w = np.array([[0.1, 0.3, 0.2, 0.2, 0.2]] + [[0.2] * 5] * 5)
    c = discretize.commit(w, 0, C3)
    assert c[0].tolist() == [0.0, 0.0, 0.0, pytest.approx(0.9), 0.0] and (c[1:] == w[1:]).all()
    assert discretize.commit(w, 0, NONE)[0].sum() == 0.0
    assert (w[0] == [0.1, 0.3, 0.2, 0.2, 0.2]).all()  # input unchanged


@pytest.mark.parametrize("criterion", ["remove", "keep"])
def test_progressive_follows_the_measured_loss_not_alpha(criterion):
    # a linear loss: op o on edge e lowers the loss by value[e, o] per unit of mixing weight;
    # the best op differs per edge and has nothing to do with the (uniform) mixing weights
    rng = np.random.default_rng(0)
    value = rng.uniform(0.1, 1.0, (6, 5))

    def loss(w):
        return float(-(value * w).sum())

    cell, trace = discretize.progressive(_uniform_w(), loss, criterion=criterion)
    want = [OPS[1 + int(np.argmax(value[e, 1:]))] for e in range(6)]
    assert list(parse_arch(cell)) == want and canonical(cell) == cell
    assert sorted(t["edge"] for t in trace) == list(range(6))
    margins = [t["margin"] for t in trace]
    assert margins[0] == max(margins)  # the most decisive edge is committed first
    with pytest.raises(ValueError):
        discretize.progressive(_uniform_w(), loss, criterion="bogus")


def test_progressive_sees_interactions_between_edges():
    # synergy: conv3x3 on 3<-1 pays (term k) only together with conv3x3 on 1<-0, which feeds
    # its source node 1. Measured on the full mixture (one-shot DARTS-PT) 3<-1 takes conv1x1;
    # once 1<-0 is committed to conv3x3, re-measuring makes 3<-1 take conv3x3 too.
    value = np.zeros((6, 5))
    value[:, C1], value[:, C3] = 1.0, 0.5
    value[0, C3] = 1.5
    k = 2.0

    def loss(w):
        return float(-(value * w).sum() - k * w[0, C3] * w[4, C3])

    w = _uniform_w()
    one_shot = np.zeros((6, 5))
    for e in range(6):
        for o in range(1, 5):
            w2 = w.copy()
            w2[e, o] = 0.0
            one_shot[e, o] = loss(w2) - loss(w)
    assert int(np.argmax(one_shot[4])) == C1 and int(np.argmax(one_shot[0])) == C3
    cell, trace = discretize.progressive(w, loss)
    cell = parse_arch(cell)
    assert cell[0] == cell[4] == "nor_conv_3x3" and [t["edge"] for t in trace[:2]] == [0, 4]
    assert all(o == "nor_conv_1x1" for i, o in enumerate(cell) if i not in (0, 4))


def test_progressive_respects_masks_preferences_and_connectivity():
    def loss(w):  # every edge would rather be 'none': a loss that wants no cell at all
        return float(sum(w[e, NONE + 1:].sum() for e in range(6)))

    cell = parse_arch(discretize.progressive(_uniform_w(), loss, criterion="keep")[0])
    assert connected(cell) and cell.count("none") >= 3
    allowed = np.ones((6, 5), dtype=bool)
    allowed[:, SKIP] = False
    prefer = np.ones((6, 5))
    prefer[3, C3] = np.exp(10.0)
    for criterion in ("remove", "keep"):
        cell = parse_arch(discretize.progressive(_uniform_w(), loss, allowed, prefer,
                                                 criterion=criterion)[0])
        assert connected(cell) and "skip_connect" not in cell and cell[3] == "nor_conv_3x3"
    assert "none" not in parse_arch(discretize.progressive(_uniform_w(), loss)[0])
    no_none = parse_arch(discretize.progressive(_uniform_w(), loss, criterion="keep",
                                                allow_none=False)[0])
    assert "none" not in no_none


def test_observations_state_the_collapse_and_the_credit_gaps_for_an_llm():
    from archlore.search.swnas.advisor import observations

    lead, over, under = observations(_collapsed())
    assert lead.startswith("skip_connect has the largest weight on 6 of 6 edges")
    assert "1<-0 skip_connect (0.56 vs 0.18)" in over and "nor_conv_3x3" not in over
    assert "1<-0 nor_conv_3x3 (0.22 vs 0.73)" in under and "skip_connect" not in under
    healthy = _signals([[0.1, 0.1, 0.2, 0.5, 0.1] for _ in EDGES],
                       [[0.0, 0.01, 0.02, 0.05, 0.01] for _ in EDGES], [1.0, 0.6, 0.5, 1.0])
    assert observations(healthy)[0].startswith("skip_connect has the largest weight on 0 of 6")
