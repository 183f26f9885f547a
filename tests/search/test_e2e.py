"""End to end on synthetic data: real evaluator workers, real offline mutator, real SQLite.

- a tiny run through ``run_search``: store contents, repair, outputs consistent with the store;
- ``archlore search`` killed with SIGKILL mid-run, then ``--resume``: same counts and archive
  as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from archlore.agent.cli.main import app
from archlore.agent.offline import OfflineMutator
from archlore.search.config import SearchConfig
from archlore.search.front import front_of
from archlore.search.protocol import MutationRequest, MutationResult
from archlore.search.records import Candidate
from archlore.search.run import run_search
from archlore.search.store import RunStore
from typer.testing import CliRunner

TINY = dict(dataset="synthetic", epochs=1, n_seeds=3, workers=2, seed=1)


class BreaksSomeChildren:
    """The offline mutator, except that every third idea child returns logits of the wrong
    shape -- so the evaluator rejects it at the shape stage and the engine must repair it."""

    name = "offline"
    uses_paper_text = False

    def __init__(self) -> None:
        self.inner = OfflineMutator()
        self.broken = 0

    def unsupported_reason(self, idea, space):
        return self.inner.unsupported_reason(idea, space)

    def mutate(self, request: MutationRequest) -> MutationResult:
        res = self.inner.mutate(request)
        if request.operator == "idea" and res.code and request.seed % 3 == 0:
            self.broken += 1
            res.code = res.code.replace("return self.classifier(x)", "return self.classifier(x)[:, :3]")
        return res


def test_tiny_run_end_to_end(tmp_path):
    mutator = BreaksSomeChildren()
    cfg = SearchConfig(name="tiny", budget=10, repair_turns=1, **TINY)
    res = run_search(cfg, tmp_path, mutator=mutator)
    assert res.status == "finished"
    run = tmp_path / "tiny"
    with RunStore(run, create=False) as st:
        cands = st.candidates()
        meta = st.meta()
    # store: every candidate complete, budget respected, lineage points backwards
    evaluated = [c for c in cands if c.status == "evaluated"]
    assert len(evaluated) == 10 == res.counts["evaluated"]
    assert [c.id for c in cands] == list(range(len(cands)))
    for c in cands:
        assert c.code and c.code_hash == Candidate.hash_text(c.code)
        assert all(p < c.id for p in c.parents)
        assert c.status == "duplicate" or c.evaluation is not None
    assert meta["config"] == cfg.model_dump(mode="json") and meta["status"] == "finished"
    assert any(c.idea_id for c in cands) and meta["strategy_state"]["idea_stats"]
    # repair: each broken child went back to the mutator with the error, once
    broken = [c for c in evaluated if not c.evaluation.ok]
    repairs = [c for c in cands if c.operator == "repair"]
    if mutator.broken:
        assert broken and all(c.evaluation.stage == "shape" for c in broken)
        assert {c.parents[0] for c in repairs} <= {c.id for c in broken}
        assert len(repairs) >= 1
    assert res.repaired == sum(1 for c in repairs if c.valid)
    # outputs agree with the store
    from archlore.search.objectives import get_objectives

    front = front_of(cands, get_objectives(["val_acc", "macs"]))
    assert len(front) >= 1 and res.hypervolume > 0
    with open(run / "pareto.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["id"]) for r in rows) == sorted(c.id for c in front) == sorted(res.front)
    for r in rows:
        cand = next(c for c in front if c.id == int(r["id"]))
        assert float(r["val_acc"]) == cand.evaluation.val_acc
        assert int(r["macs"]) == cand.evaluation.macs
        model = (run / r["model_file"]).read_text()
        assert model.startswith(f"# archlore run tiny: candidate #{cand.id}")
        assert "lineage (root first)" in model and cand.code in model
        assert "# reproduce: archlore evaluate cand_" in model and "--epochs 1.0" in model
        compile(model, r["model_file"], "exec")
    assert (run / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert all(f"<td>{c.id}</td>" in html for c in front)

    # the CLI rebuilds the same outputs from the store, and lists the run
    (run / "pareto.csv").unlink()
    runner = CliRunner()
    out = runner.invoke(app, ["--data-dir", str(tmp_path / "home"), "report", "nope"])
    assert out.exit_code == 2 and "no run store" in out.output
    home_runs = tmp_path / "home" / "runs"
    home_runs.mkdir(parents=True, exist_ok=True)
    (home_runs / "tiny").symlink_to(run)
    out = runner.invoke(app, ["--data-dir", str(tmp_path / "home"), "report", "tiny"])
    assert out.exit_code == 0, out.output
    with open(run / "pareto.csv") as fh:
        assert list(csv.DictReader(fh)) == rows
    out = runner.invoke(app, ["--data-dir", str(tmp_path / "home"), "runs", "list"])
    assert out.exit_code == 0 and "tiny" in out.output and "fairnad" in out.output


def _archive(db_dir: Path) -> list[tuple]:
    with RunStore(db_dir, create=False) as st:
        return [(c.id, c.code_hash, c.status, c.operator, tuple(c.parents), c.idea_id,
                 c.evaluation.status if c.evaluation else None,
                 c.evaluation.val_acc if c.evaluation else None,
                 c.evaluation.macs if c.evaluation else None) for c in st.candidates()]


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "archlore.agent.cli.main", "--data-dir", str(home), "search", "--no-live",
            *args]


def test_kill9_then_resume_matches_uninterrupted(tmp_path):
    home = tmp_path / "home"
    common = ["--dataset", "synthetic", "--budget", "10", "--seed", "3", "--epochs", "1",
              "--workers", "2", "--n-seeds", "3"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = subprocess.run(_cli(home, "--name", "ref", *common), env=env, capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stdout + ref.stderr

    proc = subprocess.Popen(_cli(home, "--name", "cut", *common), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = home / "runs" / "cut"
    deadline = time.monotonic() + 240
    evaluated = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (db / "run.db").exists():
            try:
                with RunStore(db, create=False) as st:
                    evaluated = st.count(status="evaluated")
            except Exception:  # the store is being created right now
                evaluated = 0
            if evaluated >= 4:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its evaluator workers, like a crash
    proc.wait(timeout=30)
    with RunStore(db, create=False) as st:
        assert st.get_meta("status") == "running"  # it never got to say goodbye
        killed_at = st.count(status="evaluated")
    assert 4 <= killed_at < 10

    resumed = subprocess.run(_cli(home, "--resume", "cut"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _archive(db) == _archive(home / "runs" / "ref")
    with RunStore(db, create=False) as a, RunStore(home / "runs" / "ref", create=False) as b:
        assert a.summary() == b.summary()
        assert a.get_meta("status") == "finished"
    assert (db / "report.html").is_file()
