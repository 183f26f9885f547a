"""Hostile and broken candidates end with the right status and a specific reason, and nothing
escapes — with the static policy on, and off (the OS layer and the label isolation alone).

Evidence checked for every run: status and reason, honest accuracies for an "ok" forgery, the
sentinel file never written, the secret file's content and the parent's fake API key in no
field, no connection to the local listener, the bystander process alive and not stopped, the
parent's wall time within timeout + 5 s; for the whole corpus: the parent's peak memory, no
SysV shared memory segment left, the shared work dir still empty, the fork server healthy.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from archlore.evaluator import EvalConfig, Evaluation, evaluate

from tests.evaluator.hostile_cases import CASES, FAKE_SECRET_ENV, NET, expand

BASE = {"dataset": "synthetic", "max_steps": 3, "timeout_s": 60.0, "memory_mb": 3072}
WALL_MARGIN_S = 5.0


def _shm_segments() -> int:
    try:
        with open("/proc/sysvipc/shm") as f:
            return max(0, len(f.readlines()) - 1)
    except OSError:
        return 0


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture(scope="module")
def outcomes(pool, tmp_path_factory):
    """Run every case in both modes, two at a time; returns results and the evidence."""
    from archlore.evaluator import sandbox

    root = tmp_path_factory.mktemp("hostile")
    secret_value = f"TOP-SECRET-{uuid.uuid4().hex}"
    secret = root / "secret.txt"
    secret.write_text(secret_value)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    target = subprocess.Popen(["sleep", "600"])
    shm_before = _shm_segments()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def one(code: str, cfg: EvalConfig) -> tuple[Evaluation, float]:
        start = time.monotonic()
        evaluation = evaluate(code, cfg)
        return evaluation, time.monotonic() - start

    jobs = {}
    started = time.monotonic()
    with ThreadPoolExecutor(2) as executor:
        for case in CASES:
            for mode in ("on", "off"):
                sentinel = root / f"{case.name}-{mode}.sentinel"
                code = (expand(case.code).replace("SENTINEL", str(sentinel))
                        .replace("SECRET", str(secret)).replace("PORT", str(port))
                        .replace("TARGET", str(target.pid)))
                cfg = EvalConfig(**{**BASE, **case.cfg, "static_policy": mode == "on"})
                jobs[case.name, mode] = (executor.submit(one, code, cfg), sentinel, cfg)
        results = {key: (*future.result(timeout=600), sentinel, cfg)
                   for key, (future, sentinel, cfg) in jobs.items()}
    corpus_seconds = time.monotonic() - started
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    target_state = _state(target.pid) if target.poll() is None else "dead"
    target.kill()
    target.wait()
    evidence = {
        "secret": secret_value, "connected": connected, "target_state": target_state,
        "shm_added": _shm_segments() - shm_before,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "work_dir_entries": os.listdir(sandbox._get_work_dir()),
        "corpus_seconds": corpus_seconds,
    }
    print(f"\nhostile corpus: {len(CASES)} cases x 2 modes in {corpus_seconds:.1f} s; "
          f"evidence {json.dumps({k: v for k, v in evidence.items() if k != 'secret'})}")
    return results, evidence


@pytest.mark.parametrize("mode", ["on", "off"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_candidate_is_contained(outcomes, case, mode):
    results, evidence = outcomes
    evaluation, wall, sentinel, cfg = results[case.name, mode]
    assert isinstance(evaluation, Evaluation)
    status, reason = case.on if mode == "on" else case.off
    assert evaluation.status == status, (evaluation.reason, evaluation.output[-2000:])
    assert reason in evaluation.reason, (evaluation.reason, evaluation.output[-2000:])
    if status != "ok":
        assert evaluation.reason, "every non-ok outcome names a reason"
        assert evaluation.val_acc is None and evaluation.test_acc is None
    else:
        assert 0.0 <= evaluation.val_acc <= 1.0 and 0.0 <= evaluation.test_acc <= 1.0
    if case.forges_accuracy and status == "ok":
        assert evaluation.val_acc < 0.9 and evaluation.test_acc < 0.9, "accuracy was forged"
    assert not sentinel.exists(), f"{case.name}: the sentinel was written outside the sandbox"
    dumped = json.dumps(evaluation.model_dump(mode="json"))
    assert evidence["secret"] not in dumped
    assert FAKE_SECRET_ENV not in dumped
    assert len(evaluation.output) <= 64_000 + 200
    assert wall <= cfg.timeout_s + WALL_MARGIN_S, f"the parent took {wall:.1f} s"
    if mode == "off" and evaluation.stage != "policy" and case.name != "missing_net":
        # the worker ran, so it must have been contained by every layer
        joined = "\n".join(evaluation.containment)
        assert "landlock ABI" in joined and "seccomp: EPERM" in joined, joined


def test_forgeries_are_live_but_change_nothing(outcomes):
    """Without the policy the forgeries really run (the worker's own record claims 1.0 and
    says so in its output), yet the parent's accuracies stay honest: the worker never had the
    labels and its claimed accuracies are not read."""
    results = outcomes[0]
    for case in CASES:
        if case.forges_accuracy:
            evaluation = results[case.name, "off"][0]
            assert evaluation.status == "ok", (case.name, evaluation.reason)
            assert evaluation.val_acc < 0.9, case.name
            if "FORGE" in case.code:  # the worker really built a result claiming 1.0
                assert "FORGED" in evaluation.output, case.name


def test_corpus_evidence(outcomes):
    evidence = outcomes[1]
    assert evidence["connected"] is False, "a worker connected to the local listener"
    assert evidence["target_state"] not in {"dead", "T", "t"}, evidence["target_state"]
    assert evidence["shm_added"] <= 0, "SysV shared memory was left in the kernel"
    assert evidence["work_dir_entries"] == [], "a worker left files behind"
    assert evidence["rss_growth_mb"] < 512, "the parent's memory grew with hostile output"


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
