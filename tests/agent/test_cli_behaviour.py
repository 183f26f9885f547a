"""The CLI's rough edges a new user hits: one-line errors with exit 2, names never cut,
--json listings, a finished run not restarted, runs show / compare, ideas credited honestly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from archlore.agent.cli.main import app
from typer.testing import CliRunner

TABLE = Path(os.environ.get("ARCHLORE_NB201_TABLE")
             or Path(__file__).resolve().parents[3] / "shared" / "data" / "nb201.csv")
LONG = "a-run-name-much-longer-than-any-eighty-column-table-would-leave-room-for-in-a-cell"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("ARCHLORE_NB201_TABLE", raising=False)
    home = tmp_path / "home"

    def invoke(*args: str):
        return CliRunner().invoke(app, ["--data-dir", str(home), *args], catch_exceptions=False)

    return invoke


def _one_line_error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    err = [x for x in lines if x.startswith("archlore ")]
    assert len(err) == 1 and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in err[0], err[0]


def test_setup_mistakes_are_one_line_errors(cli):
    _one_line_error(cli("search", "--no-live", "--space", "nb201", "--dataset", "cifar10"),
                    "NAS-Bench-201 table")
    _one_line_error(cli("search", "--no-live", "--dataset", "cifar10"), "cifar-10-batches-py",
                    "--download")
    _one_line_error(cli("search", "--no-live", "--strategy", "nope"), "unknown strategy 'nope'")
    _one_line_error(cli("search", "--no-live", "--objectives", "val_acc,speed"), "speed")
    _one_line_error(cli("runs", "show", "nope"), "no run store")


@pytest.mark.skipif(not TABLE.is_file(), reason=f"NAS-Bench-201 table not at {TABLE}")
def test_runs_listing_show_compare_and_finished_resume(cli, tmp_path):
    for name, strategy in ((LONG, "fairnad"), ("rea-run", "rea")):
        res = cli("search", "--no-live", "--space", "nb201", "--dataset", "cifar10", "--table",
                  str(TABLE), "--budget", "15", "--strategy", strategy, "--name", name)
        assert res.exit_code == 0, res.output
        assert res.output.startswith(f"starting run {name}:")  # named before any candidate
    res = cli("runs", "list")
    assert LONG in res.output  # piped (CliRunner): names whole, tab-separated
    rows = json.loads(cli("runs", "list", "--json").output)
    assert {r["name"] for r in rows} == {LONG, "rea-run"}
    assert all(r["status"] == "finished" and r["candidates"] >= 15 for r in rows)
    shown = json.loads(cli("runs", "show", LONG, "--json").output)
    assert shown["front"] and {"val_acc", "macs", "test_acc"} <= set(shown["front"][0])
    assert "Pareto front" in cli("runs", "show", LONG).output
    png = tmp_path / "cmp.png"
    res = cli("runs", "compare", LONG, "rea-run", "--out", str(png))
    assert res.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    res = cli("search", "--resume", LONG)
    assert res.exit_code == 0 and "already finished" in res.output
    assert "starting" not in res.output and "resuming" not in res.output


def test_refine_children_are_not_credited_with_an_unused_idea(tmp_path):
    """The idea drawn for a slot is recorded only when the child applies it."""
    from archlore.agent.mutators import make_mutator
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search
    from archlore.search.store import RunStore

    cfg = SearchConfig(name="credit", dataset="synthetic", budget=14, seed=5, max_steps=2,
                       n_seeds=2, options={"mutation": {"idea": 0.3, "pareto": 0.3,
                                                        "refine": 0.4, "crossover": 0.0}})
    run_search(cfg, tmp_path, mutator=make_mutator("offline"), write_outputs=False)
    with RunStore(tmp_path / "credit", create=False) as st:
        cands = st.candidates()
    moves = [c for c in cands if c.operator in ("refine", "pareto")]
    assert moves and all(c.idea_id is None for c in moves)
    assert all(c.move for c in moves if c.status != "duplicate" and not c.error)
    assert any(c.idea_id for c in cands if c.operator == "idea")


def test_a_run_that_breaks_is_marked_failed_not_running(tmp_path):
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search
    from archlore.search.store import RunStore

    class Broken:
        name = "broken"
        uses_paper_text = False

        def unsupported_reason(self, idea, space):
            return None

        def mutate(self, request):
            raise RuntimeError("mutator bug")

    cfg = SearchConfig(name="broke", dataset="synthetic", budget=6, n_seeds=1, max_steps=1)
    with pytest.raises(RuntimeError, match="mutator bug"):
        run_search(cfg, tmp_path, mutator=Broken(), write_outputs=False)
    with RunStore(tmp_path / "broke", create=False) as st:
        assert st.get_meta("status") == "failed"
        assert "mutator bug" in st.get_meta("stop_reason")
