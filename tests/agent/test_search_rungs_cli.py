"""``archlore search --rungs 1,3,9 [--reduction 3]``: the multi-fidelity flag."""

from __future__ import annotations

import pytest
from archlore.agent.cli.main import app
from archlore.search.config import ConfigError, build_config, parse_rungs
from typer.testing import CliRunner


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    home = tmp_path / "home"

    def invoke(*args: str):
        return CliRunner().invoke(app, ["--data-dir", str(home), *args], catch_exceptions=False)

    return invoke, home


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    err = [x for x in lines if x.startswith("archlore ")]
    assert len(lines) == 1 and len(err) == 1 and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in err[0], err[0]


def test_parse_rungs():
    assert parse_rungs("1,3,9") == [1.0, 3.0, 9.0]
    assert parse_rungs(" 0.5, 2 ") == [0.5, 2.0]
    for bad in ("", "3", "1,x", "3,1", "1,1", "0,2", "-1,2", "1,nan", "1,,"):
        with pytest.raises(ConfigError, match="--rungs"):
            parse_rungs(bad)


def test_flags_set_the_fidelity_section():
    cfg = build_config(overrides={"rungs": [1.0, 3.0, 9.0], "reduction": 4})
    assert cfg.fidelity.rungs == [1.0, 3.0, 9.0] and cfg.fidelity.reduction == 4
    assert build_config(overrides={"rungs": None}).fidelity.rungs is None


@pytest.mark.parametrize("args,needle", [
    (["--rungs", "1,x,9"], "--rungs"), (["--rungs", "9,3"], "1,3,9"),
    (["--rungs", "3"], "two or more"), (["--rungs", "1,3", "--reduction", "1"], "--reduction")])
def test_bad_rungs_are_one_line_errors(cli, args, needle):
    invoke, _ = cli
    _one_line_error(invoke("search", "--no-live", *args), needle)


def test_search_with_rungs_runs_multi_fidelity(cli):
    from archlore.search.store import RunStore

    invoke, home = cli
    res = invoke("search", "--no-live", "--name", "mf-cli", "--dataset", "synthetic",
                 "--strategy", "random", "--budget", "4", "--rungs", "1,2", "--reduction", "2",
                 "--set", "recipe.max_steps=2", "--set", "proxy_check.candidates=0")
    assert res.exit_code == 0, res.output
    run = next(home.rglob("mf-cli"))
    with RunStore(run, create=False) as st:
        cfg = st.get_meta("config")
        rungs = st.rungs()
        fid = st.get_meta("fidelity")
    assert cfg["fidelity"] == {"rungs": [1.0, 2.0], "reduction": 2}
    assert len(rungs) == 4 and any(1 in r for r in rungs.values())
    assert fid["counts"][0] == 4
