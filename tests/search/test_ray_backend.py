"""The ``ray`` backend on a real local multi-node Ray cluster (loopback, no mocks).

One module-wide cluster: a head that offers no CPUs (so it gets no evaluation actor) and two
worker nodes with one CPU each, so every backend here sees 2 evaluation slots on 2 nodes.
The unmarked tests together stay well under a minute on 2 cores; the rest is ``slow``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from archlore.evaluator.records import EvalConfig, Evaluation  # noqa: E402
from archlore.search.records import Candidate  # noqa: E402

from tests.evaluator.hostile_cases import CASES, FAKE_SECRET_ENV  # noqa: E402

EXAMPLE = (Path(__file__).parents[2] / "examples" / "resnet_tiny.py").read_text()
# Node death is noticed by the GCS health check; the defaults (3 s x 5) are slow for tests.
FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
               "health_check_initial_delay_ms": 0}
NODE = {"num_cpus": 1, "object_store_memory": 10**8}
TINY = EvalConfig(dataset="synthetic", max_steps=2, timeout_s=60.0)
# "Mostly waits": the static policy forbids ``import time``, so these run with the OS-level
# containment alone (static_policy=False), which lets a worker sleep.
WAITING = EvalConfig(dataset="synthetic", max_steps=1, timeout_s=60.0, static_policy=False)


def sleepy(seconds: float, tag: int = 0) -> str:
    return f'''
import time
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes + {tag} - {tag})
        time.sleep({seconds})

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))
'''


def widths(n: int) -> list[str]:
    return [EXAMPLE.replace("width: int = 32", f"width: int = {4 + i}") for i in range(n)]


def wait_until(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 10**8, "include_dashboard": False,
        "_system_config": FAST_HEALTH})
    for _ in range(2):
        c.add_node(**NODE)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def make_backend(cfg: EvalConfig = TINY, **kw):
    from archlore.search.backends.ray import RayBackend

    return RayBackend(cfg, workers=1, refresh_s=0.5, **kw)


# -- unmarked: CI runs these on a real 3-process cluster ------------------------------------------
def test_import_needs_no_ray_and_backend_is_registered():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import archlore.search.backends.ray as m\n"
            "from archlore.search.registry import list_backends\n"
            "assert 'ray' in list_backends(), list_backends()\n"
            "try:\n    m.RayBackend(m.EvalConfig())\nexcept ImportError:\n    print('lazy')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "lazy" in out.stdout, out.stderr


def test_scores_many_candidates_on_two_nodes_like_the_local_pool(cluster):
    from archlore.evaluator.pool import EvaluatorPool
    from archlore.search.backends.ray import make_ray_backend
    from archlore.search.config import SearchConfig

    config = SearchConfig(dataset="synthetic", recipe={"max_steps": 2}, evaluation={
        "backend": "ray", "workers": 1, "ray_address": cluster.address, "timeout_s": 60})
    backend = make_ray_backend(config, None)
    try:
        assert backend.slots() == 2 == backend.workers
        info = backend.describe()
        assert info["nodes"] == 2 and info["slots"] == 2 and info["in_use"] == 0
        codes = widths(8)
        futures = [backend.submit(Candidate(id=i, code=c)) for i, c in enumerate(codes)]
        empty = backend.submit(Candidate(id=99, code=None)).result(timeout=5)
        assert empty.status == "rejected"
        results = [f.result(timeout=180) for f in futures]
        info = backend.describe()
    finally:
        backend.close()
    assert all(isinstance(r, Evaluation) and r.status == "ok" for r in results), \
        [r.reason for r in results]
    nodes = {r.scored_by for r in results}
    assert len(nodes) == 2 and all(n.startswith("ray:") for n in nodes)
    assert info["completed"] == 8 and info["resubmitted"] == 0 and info["queued"] == 0
    assert sum(n["evaluated"] for n in info["per_node"].values()) == 8
    assert info["candidates_per_min"] > 0
    # same numbers as this machine's pool: the node only changes where it ran
    with EvaluatorPool(workers=1, devices=["cpu"]) as pool:
        for code, remote in zip(codes[:2], results[:2], strict=True):
            local = pool.submit(code, config.eval_config()).result(timeout=120)
            for key in ("status", "val_acc", "test_acc", "macs", "params", "loss_curve", "seed"):
                assert getattr(local, key) == getattr(remote, key), key


FAST_HOSTILE = [c for c in CASES if not c.cfg]  # the ones without an 8 s timeout or a memory cap


def _materialise(case, root: Path, secret: Path, port: int = 9) -> tuple[str, Path]:
    sentinel = root / f"{case.name}-{uuid.uuid4().hex[:6]}.sentinel"
    code = (case.code.replace("SENTINEL", str(sentinel)).replace("SECRET", str(secret))
            .replace("PORT", str(port)))
    return code, sentinel


def test_hostile_candidates_end_as_on_the_local_pool(cluster, tmp_path):
    """Policy on, the cases without their own timeout: same status, stage and scores as this
    machine's pool, nothing escapes."""
    from archlore.evaluator.pool import EvaluatorPool

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-" + uuid.uuid4().hex)
    base = {"dataset": "synthetic", "max_steps": 3, "timeout_s": 60.0, "memory_mb": 3072}
    jobs = [(case, *_materialise(case, tmp_path, secret)) for case in FAST_HOSTILE]
    backend = make_backend()
    try:
        remote = [backend.submit_code(code, EvalConfig(**base)) for _, code, _ in jobs]
        with EvaluatorPool(workers=1, devices=["cpu"]) as pool:
            local = [pool.submit(code, EvalConfig(**base)).result(timeout=180)
                     for _, code, _ in jobs]
        remote = [f.result(timeout=180) for f in remote]
    finally:
        backend.close()
    assert len(jobs) >= 20
    for (case, _, sentinel), r, lo in zip(jobs, remote, local, strict=True):
        assert (r.status, r.stage, r.val_acc) == (lo.status, lo.stage, lo.val_acc), \
            (case.name, r.reason, lo.reason)
        assert r.status != "ok" or not case.forges_accuracy or r.val_acc < 0.9, case.name
        assert not sentinel.exists(), case.name
        dumped = json.dumps(r.model_dump(mode="json"))
        assert secret.read_text() not in dumped and FAKE_SECRET_ENV not in dumped
        if r.stage != "policy":
            assert r.scored_by.startswith("ray:"), case.name


def test_watchdog_bounds_a_hung_candidate_and_replaces_the_actor(cluster):
    backend = make_backend(WAITING, watchdog_s=3.0)
    try:
        hung = backend.submit(Candidate(id=0, code=sleepy(1000)))
        fine = backend.submit(Candidate(id=1, code=sleepy(0)))
        ev = hung.result(timeout=60)
        assert ev.status == "timeout" and "ray watchdog" in ev.reason, ev.reason
        assert fine.result(timeout=60).status == "ok"
        wait_until(lambda: backend.slots() == 2, 90, "the replaced actor")
        after = backend.submit(Candidate(id=2, code=sleepy(0))).result(timeout=60)
        assert after.status == "ok", after.reason
        info = backend.describe()
        assert info["watchdog"] == 1 and info["actors_lost"] == 1
    finally:
        backend.close()


def test_node_loss_mid_run_resubmits_and_slots_follow_the_cluster(cluster):
    """A node joins (slots 2 -> 3), one dies mid-evaluation (3 -> 2): nothing lost, each
    candidate answered exactly once, the resubmissions recorded."""
    backend = make_backend(WAITING)
    try:
        assert backend.slots() == 2
        cluster.add_node(**NODE)
        wait_until(lambda: backend.slots() == 3, 90, "the new node's actor")
        futures = [backend.submit(Candidate(id=i, code=sleepy(2.5, i))) for i in range(6)]
        answers: Counter[int] = Counter()
        for i, f in enumerate(futures):
            f.add_done_callback(lambda _f, i=i: answers.update([i]))
        wait_until(lambda: backend.describe()["in_use"] == 3, 60, "all slots busy")
        time.sleep(0.5)
        busy = {label.split("/")[1] for label, n in backend.describe()["per_node"].items()
                if n["in_use"]}
        victim = next(n for n in cluster.list_all_nodes()
                      if not n.head and n.node_id[:8] in busy)
        cluster.remove_node(victim, allow_graceful=False)
        results = [f.result(timeout=120) for f in futures]
        wait_until(lambda: backend.slots() == 2, 60, "the dead node to drop out")
        info = backend.describe()
    finally:
        backend.close()
    assert [r.status for r in results] == ["ok"] * 6, [r.reason for r in results]
    assert answers == Counter(range(6))  # exactly once each
    assert info["resubmitted"] >= 1 and info["failed_after_retries"] == 0
    assert info["completed"] == 6 and info["nodes_lost"] == 1
    resubmitted = {e["candidate"] for e in info["resubmissions"]}
    assert len(info["resubmissions"]) == info["resubmitted"] and resubmitted <= set(range(6))
    assert all(victim.node_id[:8] in e["reason"] for e in info["resubmissions"])
    assert all(victim.node_id[:8] not in results[i].scored_by for i in resubmitted)


# -- slow -------------------------------------------------------------------------------------------
def _tiny_cifar(root: Path, n: int = 40) -> None:
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n).tolist()}
        (d / name).write_bytes(pickle.dumps(batch))


@pytest.mark.slow
def test_dataset_is_shipped_once_per_node_through_the_object_store(cluster, tmp_path):
    _tiny_cifar(tmp_path / "data")
    cfg = EvalConfig(dataset="cifar10", data_root=str(tmp_path / "data"), max_steps=1,
                     batch_size=8, timeout_s=60.0)
    backend = make_backend(cfg, ship_data="always")
    try:
        results = [backend.submit(Candidate(id=i, code=c)).result(timeout=120)
                   for i, c in enumerate(widths(3))]
        roots = {a.info.get("data_root") for a in backend._actors if a.state == "ready"}
    finally:
        backend.close()
    for root in roots - {None}:
        shutil.rmtree(root, ignore_errors=True)  # the node-local cache (loopback: this disk)
        try:
            Path(root).parent.rmdir()  # the cache folder itself, if nothing else is in it
        except OSError:
            pass
    assert [r.status for r in results] == ["ok"] * 3, [r.reason for r in results]
    assert len(roots) == 1 and None not in roots  # same content hash -> same node-local path
    assert "archlore-ray-data" in roots.pop()


@pytest.mark.slow
def test_full_hostile_corpus_matches_the_local_pool_in_both_modes(cluster, tmp_path):
    from archlore.evaluator.pool import EvaluatorPool

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-" + uuid.uuid4().hex)
    base = {"dataset": "synthetic", "max_steps": 3, "timeout_s": 60.0, "memory_mb": 3072}
    jobs = []
    for case in CASES:
        for mode in ("on", "off"):
            cfg = EvalConfig(**{**base, **case.cfg, "static_policy": mode == "on"})
            jobs.append((case, mode, cfg, *_materialise(case, tmp_path, secret)))
    backend = make_backend()
    try:
        remote = [backend.submit_code(code, cfg) for _, _, cfg, code, _ in jobs]
        remote = [f.result(timeout=600) for f in remote]
    finally:
        backend.close()
    with EvaluatorPool(workers=2, devices=["cpu"]) as pool:
        local = [pool.submit(code, cfg) for _, _, cfg, code, _ in jobs]
        local = [f.result(timeout=600) for f in local]
    for (case, mode, _, _, sentinel), r, lo in zip(jobs, remote, local, strict=True):
        assert (r.status, r.stage) == (lo.status, lo.stage), (case.name, mode, r.reason, lo.reason)
        assert not sentinel.exists()


@pytest.mark.slow
def test_a_candidate_lost_more_than_max_retries_is_failed_with_the_reason(cluster):
    backend = make_backend(WAITING, max_retries=0)
    try:
        extra = cluster.add_node(**NODE)
        wait_until(lambda: backend.slots() == 3, 90, "the new node's actor")
        futures = [backend.submit(Candidate(id=i, code=sleepy(4.0, i))) for i in range(3)]
        wait_until(lambda: backend.describe()["in_use"] == 3, 60, "all slots busy")
        time.sleep(0.5)
        cluster.remove_node(extra, allow_graceful=False)
        results = [f.result(timeout=120) for f in futures]
        info = backend.describe()
    finally:
        backend.close()
    lost = [r for r in results if r.status != "ok"]
    assert len(lost) == 1 and info["failed_after_retries"] == 1 and info["resubmitted"] == 0
    assert lost[0].status == "failed" and lost[0].stage == "worker"
    assert "lost 1 time(s)" in lost[0].reason and extra.node_id[:8] in lost[0].reason
    assert sum(r.status == "ok" for r in results) == 2
