"""The parent's side of evaluator integrity: it scores predictions itself, range-checks what a
worker reports, cuts floods, replaces a stopped fork server, cleans up on any exception and
removes what killed runs left behind; and the cost stage measures latency."""

from __future__ import annotations

import json
import os
import signal
import struct
import time

import numpy as np
import pytest
from archlore.evaluator import EvalConfig, evaluate, sandbox
from archlore.evaluator.channel import KIND_JSON, KIND_TEST, KIND_VAL, Inbox, drain
from archlore.evaluator.sandbox import DataBlob, _assemble, clean_stale_work_dirs, remove_tree

from tests.evaluator.hostile_cases import NET

FAST = {"dataset": "synthetic", "max_steps": 3, "timeout_s": 60.0, "memory_mb": 3072}
BLOB = DataBlob(-1, "[]", np.array([0, 1, 2, 3]), np.array([1, 1, 1]), 4)


def _inbox(result: dict, val=(0, 1, 0, 0), test=(1, 1, 0)) -> Inbox:
    inbox = Inbox()
    inbox.events = [{"stage": "eval"}, {"result": result}]
    if val is not None:
        inbox.predictions[KIND_VAL] = np.array(val, dtype=np.int32)
    if test is not None:
        inbox.predictions[KIND_TEST] = np.array(test, dtype=np.int32)
    return inbox


OK = {"status": "ok", "stage": "eval", "macs": 100, "params": 10, "val_acc": 1e9,
      "test_acc": float("nan")}


def test_parent_computes_accuracy_and_ignores_the_workers_claim():
    evaluation = _assemble(_inbox(OK), None, False, EvalConfig(), BLOB, time.time())
    assert evaluation.status == "ok"
    assert (evaluation.val_acc, evaluation.test_acc) == (0.5, 2 / 3)


@pytest.mark.parametrize("patch,reason", [
    ({"macs": -5}, "out-of-range macs"),
    ({"params": 1.5}, "out-of-range params"),
    ({"train_seconds": float("inf")}, "out-of-range train_seconds"),
    ({"metrics": {"latency_ms": float("nan")}}, "out-of-range metric"),
    ({"metrics": {"latency_ms": -1.0}}, "out-of-range metric"),
    ({"metrics": {"Bad Key!": 1.0}}, "out-of-range metric"),
    ({"loss_curve": ["x"]}, "malformed loss curve"),
    ({"status": "excellent"}, "malformed result"),
])
def test_out_of_range_results_are_failures(patch, reason):
    evaluation = _assemble(_inbox({**OK, **patch}), None, False, EvalConfig(), BLOB, time.time())
    assert evaluation.status == "failed" and reason in evaluation.reason
    assert evaluation.val_acc is None


def test_missing_or_out_of_range_predictions_fail():
    missing = _assemble(_inbox(OK, test=None), None, False, EvalConfig(), BLOB, time.time())
    assert missing.status == "failed" and "no predictions for the test" in missing.reason
    wild = _assemble(_inbox(OK, val=(0, 1, 7, 0)), None, False, EvalConfig(), BLOB, time.time())
    assert wild.status == "failed" and "outside 0..3" in wild.reason


def _pipe_with(data: bytes) -> tuple[int, int]:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    out_r, out_w = os.pipe()
    os.close(out_w)
    return r, out_r


@pytest.mark.parametrize("frames,violation", [
    (struct.pack(">IB", 10**9, KIND_JSON), "malformed result frame"),
    (struct.pack(">IB", 3, 9) + b"abc", "malformed result frame"),
    (struct.pack(">IB", 8, KIND_VAL) + bytes(8), "prediction frame of 8 bytes"),
    (2 * (struct.pack(">IB", 16, KIND_VAL) + bytes(16)), "second set of predictions"),
    (struct.pack(">IB", 4, KIND_JSON) + b"{{{{", "malformed JSON frame"),
])
def test_result_channel_is_strict(frames, violation):
    r, out = _pipe_with(frames)
    killed = []
    inbox, timed_out = drain(r, out, deadline=time.time() + 5, expected={KIND_VAL: 4},
                             output_limit=100, max_output=1000, exited=lambda: True,
                             kill=lambda: killed.append(1))
    assert violation in inbox.violation and killed and not timed_out
    os.close(r)
    os.close(out)


def test_drain_keeps_head_and_tail_of_output_and_respects_the_deadline():
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(out_w, b"HEAD" + b"x" * 20_000 + b"TAIL")
    start = time.time()
    inbox, timed_out = drain(r, out_r, deadline=start + 1.0, expected={}, output_limit=1000,
                             max_output=10**6, exited=lambda: False, kill=lambda: None)
    assert timed_out and time.time() - start < 2.0
    text = inbox.output(1000)
    assert text.startswith("HEAD") and text.endswith("TAIL") and "bytes cut" in text
    assert len(text) < 1100
    for fd in (r, w, out_r, out_w):
        os.close(fd)


def test_stopped_fork_server_is_detected_and_replaced():
    """A SIGSTOPped zygote still looks alive; the health check must replace it, so later
    candidates neither wedge nor wait 120 s."""
    assert evaluate(NET, EvalConfig(**FAST)).status == "ok"
    old = sandbox._get_zygote()
    os.kill(old._proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    evaluation = evaluate(NET, EvalConfig(**FAST))
    assert evaluation.status == "ok", evaluation.reason
    assert time.monotonic() - start < 60
    assert sandbox._get_zygote() is not old and not old.alive()


def test_killed_fork_server_is_restarted():
    old = sandbox._get_zygote()
    os.kill(old._proc.pid, signal.SIGKILL)
    old._proc.wait(10)
    assert evaluate(NET, EvalConfig(**FAST)).status == "ok"


def test_cleanup_on_base_exception(monkeypatch):
    """A KeyboardInterrupt in the parent mid-evaluation leaves no worker and no descriptor."""
    fds_before = set(os.listdir("/proc/self/fd"))
    seen = {}

    def interrupted(*args, **kwargs):
        seen["pid"] = kwargs["kill"].__self__.pid
        raise KeyboardInterrupt

    monkeypatch.setattr(sandbox, "drain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(NET.replace("def forward", "def forward_") + "\n", EvalConfig(**FAST))
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{seen['pid']}") and time.monotonic() < deadline:
        time.sleep(0.05)  # the zygote reaps it
    assert not os.path.exists(f"/proc/{seen['pid']}/fd"), "the worker outlived the interrupt"
    leaked = set(os.listdir("/proc/self/fd")) - fds_before
    assert not {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")
                and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")}


def test_stale_work_dirs_of_a_killed_run_are_removed(tmp_path):
    """A 3,000-deep tree, a mode-000 directory and a symlink out of it: removed without
    recursion and without following the link; live processes' dirs are kept."""
    outside = tmp_path / "keep.txt"
    outside.write_text("keep")
    stale = tmp_path / "archlore-eval-999999999-abc"
    path = stale
    for _ in range(3000):
        path = path / "d"
    os.makedirs(stale, exist_ok=True)
    cur = os.open(stale, os.O_RDONLY)
    for _ in range(3000):  # relative mkdirs: the full path is longer than PATH_MAX
        os.mkdir("d", dir_fd=cur)
        nxt = os.open("d", os.O_RDONLY, dir_fd=cur)
        os.close(cur)
        cur = nxt
    os.close(cur)
    (stale / "locked").mkdir(mode=0)
    (stale / "link").symlink_to(outside)
    live = tmp_path / f"archlore-eval-{os.getpid()}-xyz"
    live.mkdir()
    removed = clean_stale_work_dirs(str(tmp_path))
    assert removed == [str(stale)] and not stale.exists()
    assert live.exists() and outside.read_text() == "keep"
    remove_tree(str(live))
    assert not live.exists()


def test_latency_is_measured_in_the_cost_stage():
    evaluation = evaluate(NET, EvalConfig(**FAST))
    assert evaluation.status == "ok", evaluation.reason
    m = evaluation.metrics
    assert m["latency_ms"] > 0 and m["latency_batch_ms"] > 0
    assert m["latency_batch_ms"] < m["latency_ms"] * 2  # batching does not cost per image
    assert evaluation.metric("latency_ms") == m["latency_ms"]
    assert m["worker_cpu_s"] > 0  # kernel accounting from wait4, not the worker's word
    off = evaluate(NET, EvalConfig(**FAST, measure_latency=False))
    assert off.status == "ok" and "latency_ms" not in off.metrics


def test_worker_never_holds_validation_or_test_labels():
    """The worker's memfd holds exactly train_x, train_y, val_x and test_x."""
    blob = sandbox._get_data("synthetic", None)
    assert [entry["name"] for entry in json.loads(blob.layout)] == [
        "train_x", "train_y", "val_x", "test_x"]


def test_parent_refuses_pickled_code_in_dataset_files(tmp_path):
    """The parent reads the dataset files now; a tampered CIFAR batch must not run code."""
    from archlore.evaluator.data import DatasetError, load_dataset

    sentinel = tmp_path / "pwned"
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    payload = b"cos\nsystem\n(S'touch " + str(sentinel).encode() + b"'\ntR."
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing to load os.system"):
        load_dataset("cifar10", tmp_path)
    assert not sentinel.exists()


def test_cuda_landlock_rules_keep_shared_memory_and_terminals_closed(tmp_path):
    """The CUDA variant of the Landlock rules (devices writable for the driver), applied in a
    throwaway process on this CPU machine: /dev/shm and terminals stay closed to writes."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from archlore.evaluator.containment import apply_containment\n"
        "from archlore.evaluator.records import EvalConfig\n"
        f"lines = apply_containment({str(tmp_path)!r}, EvalConfig(), cuda=True)\n"
        "assert any('landlock ABI' in l for l in lines), lines\n"
        "open('/dev/null', 'w').write('ok')\n"
        "for path in ('/dev/shm/archlore-probe', '/dev/pts/ptmx', "
        f"{str(tmp_path / 'x')!r}):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "    except OSError:\n"
        "        continue\n"
        "    sys.exit('writable: ' + path)\n"
        "print('contained')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "contained" in done.stdout, done.stderr[-2000:]
    assert not os.path.exists("/dev/shm/archlore-probe")
