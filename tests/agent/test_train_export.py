"""``archlore train`` (checkpointed, resumable final training) and ``archlore export`` (ONNX
and TorchScript, verified by running the written files), on tiny synthetic data."""

from __future__ import annotations

import json

import pytest
import torch
from archlore.agent.cli.main import app
from archlore.evaluator.final import FinalTrainingError, export_model, train_final
from typer.testing import CliRunner

from tests.agent.conftest import PARENT

runner = CliRunner()


def test_train_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path):
    full = train_final(PARENT, tmp_path / "full", dataset="synthetic", epochs=2, seed=1,
                       steps_per_epoch=4)
    assert full.steps > 0 and 0 <= full.val_acc <= 1 and len(full.curve) == 2
    for name in ("weights", "model", "checkpoint", "metrics", "curve"):
        assert (tmp_path / "full" / full.files[name].split("/")[-1]).is_file()

    calls = {"n": 0}

    def stop_in_epoch_two(p):
        if p["epoch"] == 2 and "val_acc" not in p:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_final(PARENT, tmp_path / "cut", dataset="synthetic", epochs=2, seed=1,
                    steps_per_epoch=4, progress=stop_in_epoch_two)
    again = train_final(PARENT, tmp_path / "cut", dataset="synthetic", epochs=2, seed=1,
                        steps_per_epoch=4)
    assert again.resumed_from_epoch == 1
    a = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.val_acc == full.val_acc


def test_train_refuses_policy_violations_and_foreign_checkpoints(tmp_path):
    with pytest.raises(FinalTrainingError, match="policy"):
        train_final("import os\nos.system('true')\n" + PARENT, tmp_path / "bad",
                    dataset="synthetic", epochs=1,
                steps_per_epoch=2)
    train_final(PARENT, tmp_path / "m", dataset="synthetic", epochs=1,
                steps_per_epoch=2)
    with pytest.raises(FinalTrainingError, match="another model"):
        train_final(PARENT, tmp_path / "m", dataset="synthetic", epochs=2,
                    steps_per_epoch=2)


def test_cli_train_then_export_verifies_onnx_and_torchscript(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = tmp_path / "net.py"
    model.write_text("# dataset synthetic, seed 0\n" + PARENT)
    out = tmp_path / "trained"
    r = runner.invoke(app, ["--data-dir", str(tmp_path / "home"), "train", str(model),
                            "--epochs", "1", "--out", str(out), "--steps-per-epoch", "3"])
    assert r.exit_code == 0, r.output
    assert "test acc" in r.output and (out / "weights.pt").is_file()
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "synthetic"
    r = runner.invoke(app, ["export", str(out), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["onnx"]["ok"] and res["torchscript"]["ok"]
    assert (out / "model.onnx").is_file() and (out / "model.ts").is_file()

    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"images": np.zeros((5, 3, 16, 16), np.float32)})[0]
    assert y.shape == (5, 10)  # the batch axis is dynamic


def test_export_reports_a_format_that_fails(tmp_path, monkeypatch):
    train_final(PARENT, tmp_path / "m", dataset="synthetic", epochs=1,
                steps_per_epoch=2)

    def broken(*a, **k):
        raise RuntimeError("no tracing today")

    monkeypatch.setattr(torch.jit, "trace", broken)
    res = export_model(tmp_path / "m", "synthetic", formats=("torchscript",))
    assert not res["torchscript"]["ok"] and "no tracing" in res["torchscript"]["error"]


def test_cli_train_a_run_candidate_by_run_and_id(tmp_path):
    from archlore.search.records import Candidate
    from archlore.search.store import RunStore

    home = tmp_path / "home"
    with RunStore(home / "runs" / "r1") as st:
        st.add(Candidate(id=0, code=PARENT, code_hash="x"))
        st.set_meta("recipe", {"dataset": "synthetic", "seed": 2, "lr": 0.02, "epochs": 1})
    r = runner.invoke(app, ["--data-dir", str(home), "train", "r1:0", "--epochs", "1",
                            "--steps-per-epoch", "2", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{"):])
    assert res["out_dir"].endswith("r1-cand_0000-synthetic-1ep")
    r = runner.invoke(app, ["--data-dir", str(home), "train", "r1:7"])
    assert r.exit_code != 0 and "no candidate 7" in r.output
