"""Proxy reliability statistics (closed form, variance components, rank agreement) and the
check a search records, with synthetic scores; one tiny real proxy-check through the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from archlore.search.proxy import (
    assess,
    format_report,
    in_search_check,
    kendall_from_pearson,
    rank_agreement,
    rho_pearson,
    spearman_from_pearson,
    variance_components,
    verdict_of,
)


def test_closed_form_limits_and_known_values():
    assert spearman_from_pearson(1.0) == pytest.approx(1.0)
    assert spearman_from_pearson(0.0) == 0.0
    assert kendall_from_pearson(1.0) == pytest.approx(1.0)
    assert spearman_from_pearson(0.5) == pytest.approx(6 / math.pi * math.asin(0.25))
    assert rho_pearson(1.0) == pytest.approx(math.sqrt(0.5))
    assert rho_pearson(1.0, seeds=3) == pytest.approx(math.sqrt(0.75))
    assert rho_pearson(math.inf) == 1.0 and rho_pearson(0.0) == 0.0


def test_variance_components_recover_the_simulated_variances():
    rng = np.random.default_rng(0)
    a = rng.normal(0.7, 0.05, 4000)  # sigma2_arch = 0.0025
    y = a[:, None] + rng.normal(0, 0.025, (4000, 3))  # sigma2_noise = 0.000625, SNR 4
    vc = variance_components(y)
    assert vc.sigma2_arch == pytest.approx(0.0025, rel=0.06)
    assert vc.sigma2_noise == pytest.approx(0.000625, rel=0.04)
    assert vc.snr == pytest.approx(4.0, rel=0.1)
    assert vc.sigma2_means > vc.sigma2_arch  # the plain variance of means includes noise / S
    assert vc.rho_s_pred == pytest.approx(spearman_from_pearson(math.sqrt(0.8)), abs=0.01)


def test_variance_components_skip_missing_scores_and_need_two_archs():
    y = [[0.5, 0.52, None], [0.7, 0.69, 0.71], [0.6, None, None]]
    vc = variance_components(np.array(y, dtype=float))
    assert vc.n_archs == 2
    with pytest.raises(ValueError):
        variance_components([[0.5, 0.6]])


def test_closed_form_matches_the_measured_spearman_on_normal_data():
    """Under the model's own assumptions (normal effects and noise) the prediction holds."""
    rng = np.random.default_rng(1)
    n, snr = 3000, 1.5
    a = rng.normal(0, 1, n)
    proxy = a + rng.normal(0, math.sqrt(1 / snr), n)
    ra = rank_agreement(proxy, a, n_boot=0)
    assert ra.all.spearman.value == pytest.approx(spearman_from_pearson(rho_pearson(snr)),
                                                  abs=0.02)
    assert ra.all.kendall.value == pytest.approx(kendall_from_pearson(rho_pearson(snr)),
                                                 abs=0.02)


def test_rank_agreement_bootstrap_interval_and_top_k_collapse():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, 60)
    proxy = a + rng.normal(0, 0.5, 60)
    ra = rank_agreement(proxy, a, top_k=15, n_boot=300)
    s = ra.all.spearman
    assert s.low is not None and s.low < s.value < s.high
    assert ra.k == 15 and ra.top_k is not None
    assert ra.top_k.spearman.value < s.value  # range restriction: lower among the best
    assert 0 <= ra.top_k_overlap <= 1


def test_assess_with_reference_predicts_and_warns():
    rng = np.random.default_rng(3)
    a = rng.normal(0.8, 0.01, 40)
    noisy = (a[:, None] + rng.normal(0, 0.03, (40, 3))).tolist()  # SNR ~ 0.1
    ref = (a[:, None] + rng.normal(0, 0.002, (40, 2))).tolist()
    rep = assess(noisy, ref, n_boot=100, epochs=1, ref_epochs=10, dataset="x")
    assert rep.verdict == "noise" and "mostly noise" in rep.warning
    assert rep.proxy.snr < 1 and rep.ref is not None and rep.ref.snr > 5
    assert rep.agreement is not None and rep.rho_s_pred_vs_ref is not None
    lines = format_report(rep)
    assert any("predicted Spearman" in x for x in lines) and lines[-1].startswith("verdict")
    assert verdict_of(10.0) == ("trustworthy", None) and verdict_of(2.0)[0] == "rough"


class _Ev:
    def __init__(self, v, ok=True):
        self.v, self.ok, self.metrics = v, ok, {}

    def metric(self, name):
        return self.v


class _Cand:
    def __init__(self, cid, v):
        self.id, self.code, self.valid = cid, f"code{cid}", True
        self.evaluation = _Ev(v)


def test_in_search_check_rescoring_a_spread_of_candidates_with_a_second_seed():
    from concurrent.futures import Future

    from archlore.evaluator.records import EvalConfig

    cands = [_Cand(i, 0.5 + 0.04 * i) for i in range(10)]
    seen = []

    def submit(code, cfg):
        seen.append((code, cfg.seed))
        f = Future()
        f.set_result(_Ev(0.5 + 0.04 * int(code[4:]) + 0.001))
        return f

    rep = in_search_check(cands, EvalConfig(seed=5), submit, n=4)
    assert rep.ids == [0, 3, 6, 9]  # spread over the accuracy range, ends included
    assert {s for _, s in seen} == {6}
    assert rep.verdict == "trustworthy" and rep.proxy.snr > 100
    assert in_search_check(cands[:2], EvalConfig(), submit) is None


def test_a_real_search_records_the_check_and_the_report_warns_when_snr_is_low(tmp_path):
    """Pool backend, real (tiny) training: the finished run re-scores 3 candidates with a
    second seed; the report shows the figures, and a red warning when SNR is low."""
    from archlore.search.config import SearchConfig
    from archlore.search.report import write_outputs
    from archlore.search.run import run_search
    from archlore.search.store import RunStore

    cfg = SearchConfig(name="pc", dataset="synthetic", strategy="random", budget=4, seed=0,
                       recipe={"max_steps": 2, "batch_size": 32},
                       proxy_check={"candidates": 3})
    res = run_search(cfg, tmp_path)
    assert res.status == "finished"
    with RunStore(tmp_path / "pc", create=False) as st:
        pc = st.get_meta("proxy_check")
        assert pc is not None
        if "skipped" not in pc:  # fewer than 3 valid candidates is possible, if unlikely
            assert len(pc["ids"]) == 3 and pc["proxy"]["n_archs"] >= 2
            assert "proxy reliability" in (tmp_path / "pc" / "report.html").read_text()
        low = assess([[0.5, 0.7], [0.6, 0.4], [0.55, 0.5]], n_boot=0).model_dump(mode="json")
        st.set_meta("proxy_check", low)
        html = write_outputs(st).html.read_text()
    assert "Proxy reliability: noise" in html and "mostly noise" in html


def test_split_seed_check_agrees_with_the_closed_form_on_normal_data():
    rng = np.random.default_rng(4)
    a = rng.normal(0, 1, 3000)
    y = a[:, None] + rng.normal(0, 1, (3000, 3))  # SNR 1
    rep = assess(y.tolist(), n_boot=0)
    assert rep.split_spearman == pytest.approx(rep.split_spearman_pred, abs=0.03)
    assert rep.split_spearman_pred == pytest.approx(
        spearman_from_pearson(math.sqrt(0.5) * math.sqrt(2 / 3)), abs=0.02)


def test_cli_proxy_check_scores_a_sample_and_prints_the_report(tmp_path):
    import json

    from archlore.agent.cli.main import app
    from typer.testing import CliRunner

    out = tmp_path / "pc.json"
    r = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "proxy-check", "--dataset",
                                 "synthetic", "--archs", "3", "--seeds", "2", "--max-steps", "1",
                                 "--bootstrap", "0", "--workers", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "SNR" in r.output and "verdict:" in r.output
    rep = json.loads(out.read_text())
    assert len(rep["scores"]) == 3 and all(len(row) == 2 for row in rep["scores"])
    r = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "proxy-check", "--dataset",
                                 "no-such-data"])
    assert r.exit_code != 0
