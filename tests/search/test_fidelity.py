"""Multi-fidelity (ASHA) promotion: the ladder on its own, then in the engine with a fake
trainer whose score depends on the code, the epochs and the seed (no torch training)."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
from archlore.evaluator.records import EvalConfig, Evaluation
from archlore.search.config import SearchConfig
from archlore.search.fidelity import Ladder, pareto_order, rung_config
from archlore.search.objectives import get_objectives
from archlore.search.run import run_search
from archlore.search.store import RunStore

OBJ = get_objectives(["val_acc", "macs"])


def test_pareto_order_ranks_front_first_then_crowding_then_id():
    vals = {0: [0.9, 100.0], 1: [0.8, 50.0], 2: [0.7, 200.0], 3: [0.85, 80.0], 4: [0.5, 10.0]}
    order = pareto_order(vals, OBJ)
    assert set(order[:4]) == {0, 1, 3, 4}  # the front (2 is dominated by 0 and 1)
    assert order[-1] == 2
    assert order[:2] == [0, 4]  # the front's extremes (infinite crowding), id order


def test_ladder_promotes_the_best_fraction_once_per_rung():
    lad = Ladder([1, 3, 9], 3, OBJ)
    for cid in range(5):
        lad.record(cid, 0, [0.1 * cid, 100.0])  # same cost: accuracy decides
    assert lad.promotions() == [(4, 1)]  # floor(5/3) = 1
    assert lad.promotions() == []  # issued once
    lad.record(5, 0, None)  # a failure counts in n but is never promoted
    assert lad.promotions() == [(3, 1)]  # floor(6/3) = 2: the next best
    lad.record(4, 1, [0.9, 100.0])
    lad.record(3, 1, [0.8, 100.0])
    lad.record(7, 1, [0.1, 100.0])
    assert lad.promotions() == [(4, 2)]
    assert lad.highest(4) == 1 and lad.highest(5) is None
    assert lad.counts() == [6, 3, 0]


def test_rung_config_scales_a_step_cap_with_the_epochs():
    base = EvalConfig(epochs=4, max_steps=9)
    assert rung_config(base, [1, 3, 9], 0).max_steps == 1
    assert rung_config(base, [1, 3, 9], 2).max_steps == 9
    assert rung_config(base, [1, 3, 9], 1).epochs == 3
    assert rung_config(EvalConfig(), [1, 3], 0).max_steps is None


def test_fidelity_settings_validate():
    with pytest.raises(ValueError):
        SearchConfig(fidelity={"rungs": [3, 1]})
    with pytest.raises(ValueError):
        SearchConfig(fidelity={"rungs": [1, 3], "reduction": 1})
    assert SearchConfig(fidelity={"rungs": [1, 3]}).fidelity.reduction == 3


def fake_score(code: str, cfg: EvalConfig) -> Evaluation:
    h = int(hashlib.sha256(code.encode()).hexdigest()[:8], 16)
    quality = (h % 1000) / 1000.0  # what the architecture is worth
    noise = ((h >> 3) + 7919 * cfg.seed) % 97 / 97.0 - 0.5
    epochs = cfg.epochs if cfg.max_steps is None else cfg.max_steps
    acc = 0.3 + 0.5 * quality * (1 - 0.5 ** epochs) + 0.02 * noise
    return Evaluation(status="ok", stage="eval", val_acc=acc, test_acc=acc,
                      macs=1000 + h % 5000, params=100, seed=cfg.seed, dataset=cfg.dataset)


class FakeTrainer:
    """A backend with ``submit_code`` (like the Ray backend): scores code with any config."""

    name = "fake"

    def __init__(self, cfg: EvalConfig, workers: int = 2) -> None:
        self.eval_config = cfg
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers)
        self.calls: list[tuple[float, int]] = []

    def slots(self) -> int:
        return self.workers

    def submit(self, candidate) -> Future:
        return self.submit_code(candidate.code, self.eval_config)

    def submit_code(self, code, cfg=None) -> Future:
        cfg = cfg or self.eval_config
        self.calls.append((cfg.epochs, cfg.seed))
        return self.pool.submit(fake_score, code, cfg)

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True)

    def describe(self) -> dict:
        return {"backend": self.name}


def _cfg(name: str, budget: int = 18) -> SearchConfig:
    return SearchConfig(name=name, dataset="synthetic", strategy="random", budget=budget,
                        seed=3, fidelity={"rungs": [1, 3, 9], "reduction": 3},
                        proxy_check={"candidates": 4})


def _run(tmp, cfg, stop_after=None, resume=False, mutator=None):
    def progress(snap):
        if stop_after is not None and snap["told"] >= stop_after:
            raise KeyboardInterrupt

    backend = FakeTrainer(cfg.eval_config())
    res = run_search(cfg, tmp, backend=backend, resume=resume, progress=progress,
                     write_outputs=False, mutator=mutator)
    backend.close()
    return res, backend


def test_engine_promotes_keeps_every_rung_and_fronts_the_highest(tmp_path):
    res, backend = _run(tmp_path, _cfg("mf"))
    assert res.status == "finished"
    with RunStore(tmp_path / "mf", create=False) as st:
        rungs = st.rungs()
        cands = {c.id: c for c in st.candidates()}
        meta = st.meta()
    assert len(cands) == 18 and all(0 in rungs[c] for c in cands)
    n1 = sum(1 for r in rungs.values() if 1 in r)
    n2 = sum(1 for r in rungs.values() if 2 in r)
    # ASHA: the best third of each rung when it was checked, so at least n/eta (a candidate
    # promoted early stays promoted when better ones arrive later)
    assert 18 // 3 <= n1 <= 18 // 2 and n1 // 3 <= n2 <= n1 // 2 + 1
    for cid, r in rungs.items():  # the row holds the highest rung; every rung is tagged
        top = max(r)
        assert cands[cid].evaluation.metrics["rung"] == top
        assert cands[cid].evaluation.val_acc == r[top].val_acc
        for k, ev in r.items():
            assert ev.metrics["rung"] == k and ev.metrics["fidelity_epochs"] == [1, 3, 9][k]
    fid = meta["fidelity"]
    assert fid["counts"] == [18, n1, n2] and res.fidelity == fid
    assert set(fid["top_rung_front"]) <= {c for c, r in rungs.items() if 2 in r}
    assert {int(k) for k in fid["front_rungs"]} == set(res.front)
    # the proxy check re-scored rung-0 results with seed 4, at rung 0's epochs
    pc = meta["proxy_check"]
    assert len(pc["ids"]) == 4 and pc["epochs"] == 1
    assert sum(1 for e, s in backend.calls if s == 4) == 4
    assert all(e == 1 for e, s in backend.calls if s == 4)


def test_interrupted_and_resumed_multi_fidelity_run_completes_every_promotion(tmp_path):
    res, _ = _run(tmp_path, _cfg("mf2"), stop_after=10)
    assert res.status == "interrupted"
    res, _ = _run(tmp_path, _cfg("mf2"), resume=True)
    assert res.status == "finished"
    with RunStore(tmp_path / "mf2", create=False) as st:
        rungs = st.rungs()
        n = st.count()
        fid = st.get_meta("fidelity")
    assert n == 18 and len(rungs) == 18
    assert fid["counts"][1] >= 18 // 3 and fid["counts"][2] >= 1
    for r in rungs.values():
        assert sorted(r) == list(range(len(r)))  # rungs reached in order, none skipped


def test_multi_fidelity_with_the_real_pool_backend_and_the_cli_setting(tmp_path):
    """Pool backend, real tiny training: rung 0 gets 1 of the top rung's 2 steps, and the
    promoted candidates are retrained with both; the report shows the rung column."""
    from archlore.search.config import build_config

    cfg = build_config(overrides={"name": "pool-mf", "dataset": "synthetic",
                                  "strategy": "random", "budget": 4},
                       assignments=["fidelity.rungs=[1,2]", "fidelity.reduction=2",
                                    "recipe.max_steps=2", "proxy_check.candidates=0"])
    res = run_search(cfg, tmp_path)
    assert res.status == "finished" and res.fidelity is not None
    with RunStore(tmp_path / "pool-mf", create=False) as st:
        rungs = st.rungs()
    assert len(rungs) == 4 and all(0 in r for r in rungs.values())
    promoted = [r for r in rungs.values() if 1 in r]
    assert len(promoted) >= 1
    for r in promoted:
        assert r[0].metrics["fidelity_steps"] == 1 and r[1].metrics["fidelity_steps"] == 2
    html = (tmp_path / "pool-mf" / "report.html").read_text()
    assert "rung (epochs)" in html and "Strategy.update" in html
    assert res.fidelity["strategy_updates"] == sum(1 for r in promoted if r[1].ok)
    cpu = res.fidelity["cpu_s_per_rung"]  # the contained workers' kernel CPU time, per rung
    assert len(cpu) == 2 and cpu[0] > 0 and cpu[1] > 0


def _recording_rea(monkeypatch):
    """Wrap REA so the test sees every tell / update and the strategy object itself."""
    from archlore.search.strategies.rea import RegularizedEvolution

    log: dict = {"tells": [], "updates": [], "inst": []}
    init, tell, update = (RegularizedEvolution.__init__, RegularizedEvolution.tell,
                          RegularizedEvolution.update)

    def _init(self, ctx):
        init(self, ctx)
        log["inst"].append(self)

    def _tell(self, c):
        if c.status != "duplicate" and c.evaluation is not None:
            log["tells"].append((c.id, c.evaluation.metrics.get("rung")))
        tell(self, c)

    def _update(self, c):
        log["updates"].append((c.id, int(c.evaluation.metrics["rung"]), c.evaluation.val_acc))
        update(self, c)

    monkeypatch.setattr(RegularizedEvolution, "__init__", _init)
    monkeypatch.setattr(RegularizedEvolution, "tell", _tell)
    monkeypatch.setattr(RegularizedEvolution, "update", _update)
    return log


def _rea_cfg(name: str) -> SearchConfig:
    return SearchConfig(name=name, dataset="synthetic", strategy="rea", budget=18, seed=3,
                        options={"population": 30},  # nobody ages out: all stay comparable
                        fidelity={"rungs": [1, 3, 9], "reduction": 3},
                        proxy_check={"candidates": 0})


def test_strategy_is_told_rung_0_then_updated_with_every_promotion(tmp_path, monkeypatch):
    log = _recording_rea(monkeypatch)
    res, _ = _run(tmp_path, _rea_cfg("mf-rea"))
    assert res.status == "finished"
    with RunStore(tmp_path / "mf-rea", create=False) as st:
        rungs = st.rungs()
    assert log["tells"] and all(r == 0 for _, r in log["tells"])  # tell: the cheapest rung
    promoted = {(cid, k) for cid, r in rungs.items() for k, ev in r.items() if k > 0 and ev.ok}
    assert promoted and {(c, k) for c, k, _ in log["updates"]} == promoted
    for cid, k, acc in log["updates"]:  # the update carries that rung's own result
        assert acc == rungs[cid][k].val_acc
    # the strategy's feedback is the highest rung each candidate reached, never a stale one
    pop = {cid: fit for cid, _, fit in log["inst"][0].population}
    assert set(pop) == set(rungs)
    for cid, r in rungs.items():
        assert pop[cid] == pytest.approx(r[max(r)].val_acc)
    assert res.fidelity["strategy_updates"] == len(log["updates"])


def test_resumed_strategy_is_told_rung_0_and_updated_as_in_the_original_run(tmp_path,
                                                                          monkeypatch):
    log = _recording_rea(monkeypatch)
    res, _ = _run(tmp_path, _rea_cfg("mf-rea2"), stop_after=12)
    assert res.status == "interrupted"
    log["tells"].clear(), log["updates"].clear(), log["inst"].clear()
    res, _ = _run(tmp_path, _rea_cfg("mf-rea2"), resume=True)
    assert res.status == "finished"
    with RunStore(tmp_path / "mf-rea2", create=False) as st:
        rungs = st.rungs()
    assert all(r == 0 for _, r in log["tells"])  # stored rows hold higher rungs: not told
    updated = {c: k for c, k, _ in log["updates"]}  # the last update of each candidate
    for cid, r in rungs.items():
        if max(r) > 0 and r[max(r)].ok:
            assert updated[cid] == max(r)
    pop = {cid: fit for cid, _, fit in log["inst"][0].population}
    for cid, r in rungs.items():
        assert pop[cid] == pytest.approx(r[max(r)].val_acc)


def test_resume_mends_a_row_left_one_rung_behind_by_a_stop(tmp_path, monkeypatch):
    """A stop between a promotion's rung insert and the row's update leaves the row at the
    lower rung; on resume the rungs table wins: the row, the front and the strategy hold
    the highest valid rung."""
    log = _recording_rea(monkeypatch)
    res, _ = _run(tmp_path, _rea_cfg("mf-mend"), stop_after=14)
    assert res.status == "interrupted"
    with RunStore(tmp_path / "mf-mend", create=False) as st:
        rungs = st.rungs()
        promoted = [c for c, r in rungs.items() if max(r) > 0 and r[max(r)].ok]
        assert promoted
        behind = promoted[0]
        st.set_evaluation(behind, rungs[behind][max(rungs[behind]) - 1])  # the crash window
    log["inst"].clear()
    res, _ = _run(tmp_path, _rea_cfg("mf-mend"), resume=True)
    assert res.status == "finished"
    with RunStore(tmp_path / "mf-mend", create=False) as st:
        rungs = st.rungs()
        row = {c.id: c for c in st.candidates()}[behind]
    top = max(k for k, e in rungs[behind].items() if e.ok)
    assert row.evaluation.metrics["rung"] == top
    assert row.evaluation.val_acc == rungs[behind][top].val_acc
    pop = {cid: fit for cid, _, fit in log["inst"][0].population}
    assert pop[behind] == pytest.approx(rungs[behind][top].val_acc)


def test_fairnad_fronts_the_highest_rung_and_judges_children_at_the_parents_rung(
        tmp_path, monkeypatch):
    """FairNAD in a multi-fidelity run: its front is the non-dominated set of every candidate's
    highest-rung values (a promotion can push members off), while a child's outcome compares
    its rung-0 result with its parent's rung-0 result, not with the parent's longer training."""
    from archlore.search.pareto import non_dominated_mask
    from archlore.search.strategies.fairnad import FairNAD

    insts: list = []
    init = FairNAD.__init__

    def _init(self, ctx):
        init(self, ctx)
        insts.append(self)

    monkeypatch.setattr(FairNAD, "__init__", _init)
    cfg = SearchConfig(name="mf-fairnad", dataset="synthetic", strategy="fairnad", budget=24,
                       seed=5, fidelity={"rungs": [1, 3, 9], "reduction": 3},
                       proxy_check={"candidates": 0})
    from archlore.agent.mutators import make_mutator

    res, _ = _run(tmp_path, cfg, mutator=make_mutator("offline"))
    assert res.status == "finished"
    with RunStore(tmp_path / "mf-fairnad", create=False) as st:
        rungs = st.rungs()
    fn = insts[0]
    top = {cid: r[max(r)] for cid, r in rungs.items() if r[max(r)].ok}
    assert any(max(r) > 0 for r in rungs.values())  # promotions happened
    ids = sorted(top)
    pts = [[-top[i].val_acc, top[i].macs] for i in ids]
    expected = {i for i, k in zip(ids, non_dominated_mask(np.array(pts)), strict=True) if k}
    assert set(fn.front) == expected
    judged = 0
    for cid, lines in fn.history.items():
        line = lines[-1]
        if line.candidate_id != cid or not line.delta:
            continue
        parent = fn.archive[cid].parents[0]
        assert line.delta["val_acc"] == pytest.approx(
            rungs[cid][0].val_acc - rungs[parent][0].val_acc)
        judged += max(rungs[parent]) > 0  # the parent had been promoted by now or later
    assert judged >= 1
    # what the mutator is handed about a parent is at the rung its child is scored at
    for cid in fn.archive:
        if rungs.get(cid) and rungs[cid][0].ok:
            assert fn._parent_info(cid).evaluation.val_acc == rungs[cid][0].val_acc
    promoted_front = [i for i in fn.front if max(rungs[i]) > 0]
    assert promoted_front
    goal, _ = fn._pareto_goal(promoted_front[0])
    floor = (goal.floors or {}).get("val_acc")
    assert floor is None or floor == rungs[promoted_front[0]][0].val_acc
