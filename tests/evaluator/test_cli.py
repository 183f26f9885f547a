"""``archlore evaluate`` end to end: JSON keys, exit codes, the table."""

from __future__ import annotations

import json
from pathlib import Path

from archlore.agent.cli.main import app
from typer.testing import CliRunner

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "resnet_tiny.py")


def test_evaluate_json_ok():
    result = CliRunner().invoke(app, ["evaluate", EXAMPLE, "--epochs", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {"status", "stage", "reason", "macs", "params", "val_acc", "test_acc"} <= set(payload)
    assert payload["status"] == "ok" and payload["macs"] == 2_673_280


def test_evaluate_over_cap_exits_nonzero_with_table():
    result = CliRunner().invoke(app, ["evaluate", EXAMPLE, "--max-mflops", "1"])
    assert result.exit_code == 1
    assert "rejected" in result.output and "exceed the cap of 1 MMACs" in result.output


def test_evaluate_policy_rejection(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nclass Net:\n    pass\n")
    result = CliRunner().invoke(app, ["evaluate", str(bad), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert (payload["status"], payload["stage"]) == ("rejected", "policy")
    assert payload["reason"].startswith("line 1: import-not-allowed")


def test_unknown_dataset_is_a_usage_error():
    result = CliRunner().invoke(app, ["evaluate", EXAMPLE, "--dataset", "no-such-set"])
    assert result.exit_code == 2 and "unknown dataset" in result.output
