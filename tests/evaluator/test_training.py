"""Real proxy training on real data (sklearn digits), determinism, cost counting, budgets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from archlore.evaluator import EvalConfig
from archlore.evaluator.cascade import count_macs, count_params
from archlore.evaluator.train import augment

EXAMPLE = (Path(__file__).parents[2] / "examples" / "resnet_tiny.py").read_text()

KNOWN = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))
'''
# On digits (1x8x8): conv 8*8 positions * 8 out * 1 in * 9 taps = 4608 MACs; fc 512*10 = 5120.
KNOWN_MACS = 4608 + 5120
KNOWN_PARAMS = (8 * 9 + 8) + (512 * 10 + 10)


def test_small_cnn_learns_digits(pool):
    evaluation = pool.submit(EXAMPLE, EvalConfig(dataset="digits", epochs=3)).result()
    assert evaluation.status == "ok", evaluation.reason
    assert evaluation.val_acc > 0.8 and evaluation.test_acc > 0.8
    assert evaluation.loss_curve[-1] < evaluation.loss_curve[0] - 0.5
    assert evaluation.throughput > 0 and evaluation.train_seconds > 0
    assert [t.stage for t in evaluation.timings] == [
        "policy", "data", "build", "shape", "cost", "train", "eval"]


def test_same_seed_same_result_other_seed_differs(pool):
    cfg = EvalConfig(dataset="digits", epochs=1, seed=3)
    first, second, other = [pool.submit(EXAMPLE, c).result() for c in
                            (cfg, cfg, cfg.model_copy(update={"seed": 4}))]
    assert first.status == second.status == other.status == "ok"
    assert first.loss_curve == second.loss_curve
    assert first.val_acc == second.val_acc and first.test_acc == second.test_acc
    assert first.loss_curve != other.loss_curve


def test_macs_and_params_match_hand_count(pool):
    evaluation = pool.submit(KNOWN, EvalConfig(dataset="digits", max_steps=1)).result()
    assert evaluation.status == "ok", evaluation.reason
    assert evaluation.macs == KNOWN_MACS
    assert evaluation.params == KNOWN_PARAMS


def test_count_macs_strided_conv_in_process():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False))
    # 32x32 input, stride 2 -> 16x16 outputs, each 16 channels x 3 in x 9 taps
    assert count_macs(model, (3, 32, 32)) == 16 * 16 * 16 * 3 * 9
    assert count_params(model) == 16 * 3 * 9


@pytest.mark.parametrize("field,cap", [("max_params", 100), ("max_mmacs", 0.001)])
def test_over_cap_rejected_without_training(pool, field, cap):
    evaluation = pool.submit(KNOWN, EvalConfig(dataset="digits", **{field: cap})).result()
    assert (evaluation.status, evaluation.stage) == ("rejected", "cost")
    assert "exceed the cap" in evaluation.reason and "not trained" in evaluation.reason
    assert evaluation.train_seconds is None and evaluation.val_acc is None
    assert evaluation.macs == KNOWN_MACS


def test_time_budget_stops_training(pool):
    cfg = EvalConfig(dataset="digits", epochs=500, max_train_seconds=1.0)
    evaluation = pool.submit(EXAMPLE, cfg).result()
    assert evaluation.status == "ok", evaluation.reason
    assert 1.0 <= evaluation.train_seconds < 4.0


def test_augment_is_a_shift_of_the_input():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    out = augment(x, pad=1, flip=False, gen=gen)
    assert out.shape == x.shape
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        shifts = [padded[:, dy:dy + 4, dx:dx + 4] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(out[i], s) for s in shifts)


def test_string_hashing_is_fixed_in_workers(pool):
    """Candidates that iterate a set of strings (op names...) build their layers in hash
    order; with Python's per-process random hash seed the same code and seed would give a
    different network whenever the fork server restarts. Workers hash as PYTHONHASHSEED=0."""
    import os
    import subprocess
    import sys

    probe = "hash('archlore-determinism')"
    code = KNOWN.replace("    def forward(self, x):",
                         f"    def forward(self, x):\n        print('HASH', {probe})")
    evaluation = pool.submit(code, EvalConfig(max_steps=1)).result()
    assert evaluation.status == "ok", evaluation.reason
    expected = subprocess.run([sys.executable, "-c", f"print({probe})"], check=True, text=True,
                              capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert f"HASH {expected.stdout.strip()}" in evaluation.output


def test_fork_server_ignores_stray_stdout_lines(tmp_path):
    """Anything printed to stdout while the fork server starts (a sitecustomize, a library's
    notice) must not disturb the protocol: the server still becomes ready, answers a health
    check and forks a worker that reports through the pipes the parent passed it."""
    import os

    import numpy as np
    from archlore.evaluator.channel import drain, make_data_fd
    from archlore.evaluator.sandbox import _worker_env
    from archlore.evaluator.zygote import Zygote

    (tmp_path / "sitecustomize.py").write_text("print('hello from sitecustomize')\n")
    zygote = Zygote({**_worker_env(), "PYTHONPATH": str(tmp_path)})
    data_fd, layout = make_data_fd({k: np.zeros((4, 1, 8, 8), np.float32)
                                    for k in ("train_x", "val_x", "test_x")}
                                   | {"train_y": np.zeros(4, np.int64)})
    r_res, w_res = os.pipe()
    r_out, w_out = os.pipe()
    try:
        assert zygote.wait_ready(120) and zygote.healthy()
        worker = zygote.spawn(["", EvalConfig().model_dump_json(), "cpu", str(tmp_path),
                               layout], [data_fd, w_res, w_out])
        os.close(w_res)
        os.close(w_out)
        inbox, timed_out = drain(r_res, r_out, deadline=time.time() + 60, expected={},
                                 output_limit=10_000, max_output=10**6, exited=worker.done,
                                 kill=worker.kill)
        assert not timed_out and worker.wait(10)
        os.close(r_res)
        os.close(r_out)
        result = [e["result"] for e in inbox.events if "result" in e][0]
        assert result["status"] == "rejected" and "no `class Net" in result["reason"]
    finally:
        os.close(data_fd)
        zygote.close()
