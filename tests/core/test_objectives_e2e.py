"""`archlore search --objectives ...` end to end through the CLI, and a front model file that
`archlore evaluate` re-scores to the run's numbers with the recipe in its header."""

from __future__ import annotations

import csv
import json
import shlex

import pytest
from archlore.agent.cli.main import app
from typer.testing import CliRunner


def _search(home, name: str, objectives: str) -> None:
    res = CliRunner().invoke(app, [
        "--data-dir", str(home), "search", "--no-live", "--name", name, "--dataset", "synthetic",
        "--budget", "6", "--n-seeds", "3", "--seed", "2", "--objectives", objectives,
        "--set", "max_steps=3"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("objectives,unit", [("val_acc,params", "M params"),
                                             ("val_acc,latency_ms", "ms")])
def test_search_on_other_objectives_writes_front_report_and_plots(tmp_path, objectives, unit):
    home = tmp_path / "home"
    _search(home, "obj", objectives)
    run = home / "runs" / "obj"
    cost = objectives.split(",")[1]
    with open(run / "pareto.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r[cost] not in ("", None) for r in rows)
    # the front is non-dominated in (val_acc up, cost down)
    pts = [(float(r["val_acc"]), float(r[cost])) for r in rows]
    for a in pts:
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in pts)
    html = (run / "report.html").read_text()
    assert f"{cost} ({unit})" in html and "objectives val_acc, " + cost in html
    assert (run / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_front_model_reproduces_its_numbers_with_the_header_recipe(tmp_path):
    home = tmp_path / "home"
    _search(home, "repro", "val_acc,macs")
    run = home / "runs" / "repro"
    with open(run / "pareto.csv") as fh:
        row = next(iter(csv.DictReader(fh)))
    model = run / row["model_file"]
    line = next(x for x in model.read_text().splitlines() if x.startswith("# reproduce: "))
    argv = shlex.split(line.removeprefix("# reproduce: "))
    assert argv[:2] == ["archlore", "evaluate"]
    argv[2] = str(model)
    res = CliRunner().invoke(app, ["--data-dir", str(home), *argv[1:], "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output)
    assert ev["val_acc"] == pytest.approx(float(row["val_acc"]), abs=1e-9)
    assert ev["macs"] == int(row["macs"])
