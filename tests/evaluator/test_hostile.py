"""Hostile and broken candidates end with the right status and a specific reason, and nothing
escapes — with the static policy on, and off (the OS layer alone)."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from archlore.evaluator import EvalConfig, Evaluation

from tests.evaluator.hostile_cases import CASES, FAKE_SECRET_ENV, NET

BASE = {"dataset": "synthetic", "max_steps": 3, "timeout_s": 60.0, "memory_mb": 3072}


@pytest.fixture(scope="module")
def outcomes(pool, tmp_path_factory):
    """Run every case in both modes through the 2-worker pool; returns results and probes."""
    root = tmp_path_factory.mktemp("hostile")
    secret_value = f"TOP-SECRET-{uuid.uuid4().hex}"
    secret = root / "secret.txt"
    secret.write_text(secret_value)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    futures = {}
    for case in CASES:
        for mode in ("on", "off"):
            sentinel = root / f"{case.name}-{mode}.sentinel"
            code = (case.code.replace("SENTINEL", str(sentinel))
                    .replace("SECRET", str(secret)).replace("PORT", str(port)))
            cfg = EvalConfig(**{**BASE, **case.cfg, "static_policy": mode == "on"})
            futures[case.name, mode] = (pool.submit(code, cfg), sentinel)
    results = {key: (future.result(timeout=300), sentinel)
               for key, (future, sentinel) in futures.items()}
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    return results, secret_value, connected


@pytest.mark.parametrize("mode", ["on", "off"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_candidate_is_contained(outcomes, case, mode):
    results, secret_value, _ = outcomes
    evaluation, sentinel = results[case.name, mode]
    assert isinstance(evaluation, Evaluation)
    status, reason = case.on if mode == "on" else case.off
    assert evaluation.status == status, (evaluation.reason, evaluation.output[-2000:])
    assert reason in evaluation.reason, (evaluation.reason, evaluation.output[-2000:])
    if status != "ok":
        assert evaluation.reason, "every non-ok outcome names a reason"
    if case.forges_accuracy:
        assert evaluation.val_acc < 0.9 and evaluation.test_acc < 0.9, "accuracy was forged"
    assert not sentinel.exists(), f"{case.name}: the sentinel was written outside the sandbox"
    dumped = json.dumps(evaluation.model_dump(mode="json"))
    assert secret_value not in dumped
    assert FAKE_SECRET_ENV not in dumped
    assert len(evaluation.output) <= 64_000 + 200
    if mode == "off" and evaluation.stage != "policy" and case.name != "missing_net":
        # the worker ran, so it must have been contained by every layer
        joined = "\n".join(evaluation.containment)
        assert "landlock ABI" in joined and "seccomp: EPERM" in joined, joined


def test_frame_walk_is_live(outcomes):
    """Without the policy the frame-walk case really forges its scores (so the policy's
    rejection of it is what protects result integrity, not a strawman)."""
    for name in ("frame_walk_forgery", "gc_forgery", "attrgetter_frame_walk"):
        evaluation, _ = outcomes[0][name, "off"]
        assert (evaluation.val_acc, evaluation.test_acc) == (1.0, 1.0), name


def test_no_connection_reached_the_listener(outcomes):
    assert outcomes[2] is False


def test_policy_rejection_names_line_and_rule():
    from archlore.evaluator import check_source

    code = "import torch\nfrom torch import nn\nclass Net(nn.Module):\n    x = torch.hub\n"
    (violation,) = check_source(code)
    assert (violation.line, violation.rule) == (4, "denied-attribute")
    assert str(violation).startswith("line 4: denied-attribute")


def test_pool_survives_and_still_scores_after_hostile_corpus(pool, outcomes):
    evaluation = pool.submit(NET, EvalConfig(**BASE)).result(timeout=120)
    assert evaluation.status == "ok", evaluation.reason
    assert evaluation.startup_seconds is not None and evaluation.startup_seconds < 5
