"""SWNAS in the open space: the supernet's candidates are the derived nets, node masking and
dropping, AddNode during a search, edit validation, the rule-based advisor, discretisation
and the strategy through the engine.

Searches here are tiny (digits or 8x8 synthetic images, a few epochs): they test behaviour,
not search quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from archlore.search.protocol import Constraints
from archlore.search.spaces.open import OpenSpace
from archlore.search.spaces.open_render import render
from archlore.search.spaces.open_spec import ArchSpec, Stage, Stem
from archlore.search.swnas.advisor import advise, observations
from archlore.search.swnas.darts import run_search
from archlore.search.swnas.messages import (
    AddNode,
    MaskOp,
    OpenAdvisorAnswer,
    SearchSettings,
    StructuralSignals,
    render_signals,
    validate_edits,
)
from archlore.search.swnas.open_messages import OPEN_BLOCKS, MaskBlock, PreferBlock
from archlore.search.swnas.open_search import rank, scores
from archlore.search.swnas.open_supernet import OpenSupernet, _net_class

B = len(OPEN_BLOCKS)
BASE = ArchSpec(stem=Stem(channels=8), stages=[
    Stage(block="basic", channels=8, stride=1),  # droppable: identity shortcut
    Stage(block="basic", channels=16, stride=2)])
TINY = dict(dataset="synthetic", epochs=2, n_train=64, n_val=64, n_signal=32, batch_size=32,
            image_size=8)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rendered_twin(net: OpenSupernet, choice: list[str | None]) -> torch.nn.Module:
    """The derived spec rendered and built, with the supernet's weights for its choice."""
    spec = net.derive(choice)
    twin = _net_class(render(spec))(num_classes=10, in_channels=3)
    twin.stem.load_state_dict(net.stem.state_dict())
    twin.classifier.load_state_dict(net.classifier.state_dict())
    kept = [(i, b) for i, b in enumerate(choice) if b is not None]
    for j, (i, b) in enumerate(kept):
        getattr(twin, f"stage{j + 1}").load_state_dict(
            net.stages[i].blocks[OPEN_BLOCKS.index(b)].state_dict())
    return twin


def _one_hot(choice: list[str], k: int) -> torch.Tensor:
    w = torch.zeros(k, B)
    for i, b in enumerate(choice):
        w[i, OPEN_BLOCKS.index(b)] = 1.0
    return w


def test_a_one_hot_supernet_is_exactly_the_rendered_derived_net():
    torch.manual_seed(0)
    net = OpenSupernet(BASE)
    x = torch.randn(4, 3, 8, 8)
    for choice in (["mbconv", "inception"], ["convnext", "dwsep"], ["fused", "bottleneck"]):
        twin = _rendered_twin(net, choice)
        assert torch.allclose(net(x, _one_hot(choice, 2)), twin(x), atol=1e-5)


def test_masking_a_droppable_stage_is_exactly_dropping_it():
    torch.manual_seed(0)
    net = OpenSupernet(BASE)
    assert [s.droppable for s in net.stages] == [True, False]
    x = torch.randn(4, 3, 8, 8)
    w = _one_hot(["basic", "dwsep"], 2)
    masked = net(x, w, torch.tensor([0.0, 1.0]))
    assert torch.allclose(masked, _rendered_twin(net, [None, "dwsep"])(x), atol=1e-5)
    assert not torch.allclose(masked, net(x, w), atol=1e-3)
    with pytest.raises(ValueError, match="cannot be dropped"):
        net.derive(["basic", None])


def test_bypassing_a_droppable_stage_is_its_removal_whatever_the_activation():
    """A zeroed residual branch would still pass the block's post-activation (GELU here);
    the bypass returns the stage's input."""
    torch.manual_seed(0)
    base = BASE.model_copy(update={"act": "gelu"})
    net = OpenSupernet(base)
    net.add_node(1, "mbconv")  # an added node after a stage whose output can be negative
    x = torch.randn(4, 3, 8, 8)
    choice = ["mbconv", "mbconv", "dwsep"]
    masked = net(x, _one_hot(choice, 3), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(masked, _rendered_twin(net, ["mbconv", None, "dwsep"])(x), atol=1e-5)


def test_add_node_inserts_a_trainable_tilted_stage():
    torch.manual_seed(0)
    net = OpenSupernet(BASE)
    before = len(net.weight_parameters())
    new = net.add_node(1, "dwsep")
    assert len(net.stages) == 3 and net.added == [False, True, False]
    assert net.alpha.shape == (3, B) and len(net.weight_parameters()) == before + len(new)
    p = torch.softmax(net.alpha[1], -1)
    assert int(p.argmax()) == OPEN_BLOCKS.index("dwsep") and net.stages[1].droppable
    out = net(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10)
    spec = net.derive(["basic", "dwsep", "fused"])
    assert [s.block for s in spec.stages] == ["basic", "dwsep", "fused"]
    assert spec.stages[1].channels == 8 and spec.stages[1].stride == 1


def _signals(alpha, imp, nodes, trend=None, added=None, add_left=1, masked=None):
    k = len(nodes)
    return StructuralSignals(
        space="open", epoch=4, window=2, ops=list(OPEN_BLOCKS),
        edges=[f"stage{i + 1}" for i in range(k)], alpha=alpha,
        alpha_trend=[[0.0] * B for _ in range(k)], op_importance=imp, node_importance=nodes,
        node_trend=trend or [0.0] * k, masked=masked or [[False] * B for _ in range(k)],
        added=added or [False] * k, add_left=add_left)


def test_validate_open_edits_accepts_and_rejects_with_reasons():
    sig = _signals([[1 / B] * B] * 2, [[0.0] * B] * 2, [1.0, 1.0], add_left=1)
    edits = [MaskBlock(stage=1, block="mbconv"), PreferBlock(stage=2, block="dwsep"),
             MaskBlock(stage=3, block="basic"), MaskOp(edge="1<-0", op="skip_connect"),
             AddNode(after=2, op="nor_conv_3x3"), AddNode(after=5, op="basic"),
             AddNode(after=2, op="fused"), AddNode(after=0, op="basic"),
             MaskBlock(stage=1, block="mbconv")]
    accepted, rejected = validate_edits(edits, sig)
    assert accepted == [edits[0], edits[1], edits[6]]
    reasons = [r for _, r in rejected]
    assert "the net has 2 stages" in reasons[0] and "NAS-Bench-201 edge" in reasons[1]
    assert "unknown block" in reasons[2] and "the net has 2 stages" in reasons[3]
    assert "no more nodes" in reasons[4] and reasons[5] == "duplicate edit"
    # the last block of a stage stays
    one_left = [[True] * B for _ in range(2)]
    one_left[0][0] = False
    _, rej = validate_edits([MaskBlock(stage=1, block="basic")],
                            _signals([[1 / B] * B] * 2, [[0.0] * B] * 2, [1, 1],
                                     masked=one_left))
    assert "no block" in rej[0][1]
    # and NB201 rejects the open-space edits
    from archlore.search.spaces.nb201 import EDGES
    nb = StructuralSignals(epoch=1, window=1, alpha=[[0.2] * 5] * 6,
                           alpha_trend=[[0.0] * 5] * 6, op_importance=[[0.0] * 5] * 6,
                           node_importance=[1, 1, 1, 1], node_trend=[0] * 4,
                           masked=[[False] * 5 for _ in EDGES])
    _, rej = validate_edits([MaskBlock(stage=1, block="basic")], nb)
    assert "open space only" in rej[0][1]


def test_rule_advisor_masks_useless_prefers_measured_and_adds_a_node():
    alpha = [[0.3, 0.1, 0.1, 0.1, 0.1, 0.2, 0.1], [1 / B] * B]
    imp = [[-0.01, 0.0, 0.02, 0.0, 0.0, 0.001, 0.0], [0.0, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0]]
    sig = _signals(alpha, imp, [0.4, 1.0], trend=[0.0, 0.1])
    edits = advise(sig)
    assert edits == advise(sig)  # deterministic
    masks = [(e.stage, e.block) for e in edits if isinstance(e, MaskBlock)]
    assert (1, "basic") in masks  # over-credited and removing it costs nothing
    assert (1, "mbconv") not in masks  # it measures best there
    prefs = [(e.stage, e.block) for e in edits if isinstance(e, PreferBlock)]
    assert prefs == [(2, "dwsep")]  # important stage, under-credited measured block
    adds = [e for e in edits if isinstance(e, AddNode)]
    assert [(a.after, a.op) for a in adds] == [(2, "dwsep")]
    accepted, rejected = validate_edits(edits, sig)
    assert accepted == edits and not rejected
    assert not any(isinstance(e, AddNode) for e in advise(sig.model_copy(update={"add_left": 0})))
    facts = "\n".join(observations(sig))
    assert "stage 2 1.00" in facts and "You may add 1 node" in facts
    assert "stage1" in render_signals(sig) and "convnext" in render_signals(sig)
    schema = OpenAdvisorAnswer.model_json_schema()
    assert {"AddNode", "MaskBlock", "PreferBlock"} <= set(schema["$defs"])


def test_two_added_nodes_in_one_answer_refer_to_the_net_before_it():
    s = SearchSettings(space="open", base=BASE.to_json(), advise_every=1, advisor="t",
                       max_added=2, **{**TINY, "epochs": 3})
    calls = []

    def advisor(signals):
        calls.append(signals)
        if signals.epoch == 1:  # both after the last stage; after=3 does not exist yet
            return [AddNode(after=2, op="dwsep"), AddNode(after=3, op="basic"),
                    AddNode(after=2, op="fused")]
        return []

    res = run_search(s, advisor=advisor)
    step = res.edits[0]
    assert [e["op"] for e in step["accepted"]] == ["dwsep", "fused"]
    assert "the net has 2 stages" in step["rejected"][0]["reason"]
    assert len(calls[1].edges) == 4 and calls[1].added == [False, False, True, True]
    # an added node's trend starts at 0 (its history is its first measurement)
    assert calls[1].node_trend[2:] == [0.0, 0.0]
    assert all(v == v for row in res.node_history for v in row)  # no NaN left


def test_synergistic_drops_an_unimportant_added_node_and_argmax_never_drops():
    alpha = [[1 / B] * B, [0.4] + [0.1] * (B - 1), [1 / B] * B]
    imp = [[0.01] * B, [0.001] * B, [0.02] * B]
    sig = _signals(alpha, imp, [1.0, 0.02, 1.0], added=[False, True, False])
    tables = scores(sig, lam=0.75, tau=0.1, prefer=np.ones((3, B)), droppable=[False, True, False])
    best = {m: rank(t)[0] for m, t in tables.items()}
    assert best["synergistic"][1] is None and best["argmax"][1] == "basic"
    assert all(b is not None for b in best["pt"])
    important = sig.model_copy(update={"node_importance": [1.0, 0.9, 1.0]})
    t2 = scores(important, 0.75, 0.1, np.ones((3, B)), [False, True, False])
    assert rank(t2["synergistic"])[0][1] is not None
    ranked = rank(tables["synergistic"])
    assert len(ranked) == len({tuple(r) for r in ranked}) > 1


def test_open_search_with_the_rule_advisor_adds_a_node_and_derives_valid_specs():
    s = SearchSettings(space="open", base=BASE.to_json(), advise_every=1, advisor="rules",
                       **{**TINY, "epochs": 3})
    calls = []

    def advisor(signals):
        calls.append(signals)
        return [AddNode(after=1, op="dwsep", reason="test")] if signals.epoch == 1 else []

    res = run_search(s, advisor=advisor)
    assert [len(c.edges) for c in calls] == [2, 3]
    assert calls[1].added == [False, True, False] and calls[1].add_left == 0
    assert res.edits[0]["accepted"][0]["kind"] == "add_node"
    assert all(len(a) == 3 for a in res.alpha_history)  # history in the final layout
    for method in ("argmax", "pt", "synergistic"):
        specs = [ArchSpec.from_json(a) for a in res.cells[method]]
        assert specs and len({s.key() for s in specs}) == len(specs)
        # only droppable stages go: the stride-2 stage always stays
        assert all(1 <= len(sp.stages) <= 3 and sp.stages[-1].stride == 2 for sp in specs)
    assert len(ArchSpec.from_json(res.cells["argmax"][0]).stages) == 3
    again = run_search(s, advisor=advisor)
    assert again.cells == res.cells  # deterministic per seed


def test_engine_runs_open_swnas_on_digits(tmp_path):
    import archlore.search.swnas.strategy  # noqa: F401 - registers "swnas"
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search as run_engine
    from archlore.search.store import RunStore

    opts = {"epochs": 2, "n_train": 300, "n_val": 300, "n_signal": 128, "max_proposals": 2,
            "cache_dir": str(tmp_path / "cache")}
    cfg = SearchConfig(name="swo", space="open", strategy="swnas", dataset="digits",
                       budget=2, epochs=1, options=opts)
    res = run_engine(cfg, tmp_path, write_outputs=False)
    assert res.status == "finished" and res.counts["valid"] == 2
    cands = RunStore(tmp_path / "swo", create=False).candidates()
    specs = [ArchSpec.from_code(c.code) for c in cands]
    assert all(sp is not None and sp.name.startswith("swnas-open") for sp in specs)
    seed = OpenSpace().seeds(Constraints(dataset="digits", image_size=8))[1]
    assert all(len(sp.stages) >= len(seed.stages) - 1 for sp in specs)
    # resumable: a finished run resumes without searching again (the cached result)
    again = run_engine(cfg, tmp_path, resume=True, write_outputs=False)
    assert again.status == "finished" and again.counts["candidates"] == 2
    from archlore.search.strategies.base import StrategyContext
    from archlore.search.swnas.strategy import SWNASStrategy
    tight = StrategyContext(space=OpenSpace(), constraints=Constraints(
        dataset="digits", image_size=8, max_mmacs=0.001),
        options={**opts, "base": BASE.to_json()})
    with pytest.raises(ValueError, match="fits the run's caps"):
        SWNASStrategy(tight).ask(1)  # caps that no derived net meets
    with pytest.raises(ValueError, match="nb201 cell only"):
        from archlore.search.strategies.base import StrategyContext
        from archlore.search.swnas.strategy import SWNASStrategy
        SWNASStrategy(StrategyContext(space=OpenSpace(), options={"method": "progressive"}))
