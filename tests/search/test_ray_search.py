"""Whole searches through the ``ray`` backend on a real local multi-node cluster.

- a search gives the same archive on the cluster as on the local pool (same seed, same slot
  count: 2 nodes x 1 slot vs a 2-worker pool);
- ``archlore search`` on the cluster killed with SIGKILL (the driver only: the cluster lives
  on), then ``--resume`` against the same cluster: the same archive as uninterrupted.

Both are ``slow`` (a minute or two each on 2 cores).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from archlore.agent.mutators import make_mutator  # noqa: E402
from archlore.search.config import SearchConfig  # noqa: E402
from archlore.search.store import RunStore  # noqa: E402

from tests.search.test_ray_backend import cluster  # noqa: E402,F401 - the module's cluster

try:
    from archlore.search.run import run_search
except ImportError:  # the engine before the run/engine split
    from archlore.search.engine import run_search

pytestmark = pytest.mark.slow
TINY = dict(dataset="digits", epochs=1, n_seeds=3, seed=1, budget=8)


def _archive(run_dir: Path) -> list[tuple]:
    with RunStore(run_dir, create=False) as st:
        return [(c.id, c.code_hash, c.status, c.operator, tuple(c.parents), c.idea_id,
                 c.evaluation.status if c.evaluation else None,
                 c.evaluation.val_acc if c.evaluation else None,
                 c.evaluation.macs if c.evaluation else None) for c in st.candidates()]


def _scored_by(run_dir: Path) -> list[str]:
    with RunStore(run_dir, create=False) as st:
        return [c.evaluation.scored_by for c in st.candidates()
                if c.evaluation is not None and c.evaluation.stage != "policy"]


def test_search_on_the_cluster_gives_the_local_pool_archive(cluster, tmp_path):  # noqa: F811
    pool_cfg = SearchConfig(name="pool", evaluation={"backend": "pool", "workers": 2}, **TINY)
    ray_cfg = SearchConfig(name="ray", evaluation={
        "backend": "ray", "workers": 1, "ray_address": cluster.address}, **TINY)
    from archlore.search.backends.pool import PoolBackend

    pool = PoolBackend(pool_cfg.eval_config(), workers=2, devices=["cpu"])
    try:
        a = run_search(pool_cfg, tmp_path, mutator=make_mutator("offline"), backend=pool,
                       write_outputs=False)
    finally:
        pool.close()
    b = run_search(ray_cfg, tmp_path, mutator=make_mutator("offline"), write_outputs=False)
    assert a.status == b.status == "finished"
    archive = _archive(tmp_path / "ray")
    assert archive == _archive(tmp_path / "pool")
    assert sum(1 for row in archive if row[6] == "ok") >= 4  # real scores, not all failures
    nodes = {s.split(" ")[0] for s in _scored_by(tmp_path / "ray")}
    assert len(nodes) == 2 and all(n.startswith("ray:") for n in nodes), nodes


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "archlore.agent.cli.main", "--data-dir", str(home), "search",
            "--no-live", *args]


def test_kill9_of_the_driver_then_resume_on_the_same_cluster(cluster, tmp_path):  # noqa: F811
    home = tmp_path / "home"
    common = ["--dataset", "digits", "--budget", "10", "--seed", "3", "--epochs", "1",
              "--n-seeds", "3", "--set", "evaluation.backend=ray", "--set", "evaluation.workers=1",
              "--set", f"evaluation.ray_address={cluster.address}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = subprocess.run(_cli(home, "--name", "ref", *common), env=env, capture_output=True,
                         text=True, timeout=300)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]

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
            except Exception:  # noqa: BLE001 - the store is being created right now
                evaluated = 0
            if evaluated >= 4:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # the driver only; the cluster (and its nodes) live on
    proc.wait(timeout=30)
    with RunStore(db, create=False) as st:
        assert st.get_meta("status") == "running"  # it never got to say goodbye
        killed_at = st.count(status="evaluated")
    assert 4 <= killed_at < 10

    resumed = subprocess.run(_cli(home, "--resume", "cut"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    archive = _archive(db)
    assert archive == _archive(home / "runs" / "ref")
    assert sum(1 for row in archive if row[6] == "ok") >= 5
    assert all(s.startswith("ray:") for s in _scored_by(db))
    with RunStore(db, create=False) as a, RunStore(home / "runs" / "ref", create=False) as b:
        assert a.summary() == b.summary()
        assert a.get_meta("status") == "finished"


def test_a_node_killed_mid_search_loses_nothing(cluster, tmp_path):  # noqa: F811
    """The run finishes with every candidate evaluated and told once; the resubmission is in
    the run store (``progress`` meta, from ``describe()``)."""
    import threading

    from archlore.search.backends.ray import make_ray_backend

    from tests.search.test_ray_backend import NODE, wait_until

    cfg = SearchConfig(name="lossy", evaluation={
        "backend": "ray", "workers": 1, "ray_address": cluster.address},
        **{**TINY, "budget": 10, "epochs": 2})
    extra = cluster.add_node(**NODE)
    backend = make_ray_backend(cfg, None)
    killed: list[str] = []

    def kill_when_busy() -> None:
        def busy() -> bool:
            per = backend.describe()["per_node"]
            return any(k.endswith(extra.node_id[:8]) and v["in_use"] for k, v in per.items())

        wait_until(busy, 120, "the extra node to be busy")
        cluster.remove_node(extra, allow_graceful=False)
        killed.append(extra.node_id)

    assert backend.slots() == 3
    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    try:
        res = run_search(cfg, tmp_path, mutator=make_mutator("offline"), backend=backend,
                         write_outputs=False)
    finally:
        backend.close()
    killer.join(timeout=5)
    assert killed and res.status == "finished"
    with RunStore(tmp_path / "lossy", create=False) as st:
        cands = st.candidates()
        backend_info = st.get_meta("progress")["backend"]
    assert [c.id for c in cands] == list(range(len(cands)))
    assert all(c.status in ("evaluated", "duplicate") for c in cands)
    assert sum(c.status == "evaluated" for c in cands) == 10 == res.counts["evaluated"]
    assert backend_info["resubmitted"] >= 1 and backend_info["nodes_lost"] >= 1
    assert backend_info["completed"] == backend_info["submitted"]
    lost = {e["candidate"] for e in backend_info["resubmissions"]}
    assert all(extra.node_id[:8] not in cands[i].evaluation.scored_by for i in lost)


def test_without_an_address_the_backend_starts_and_stops_ray_itself(tmp_path):
    code = (
        "import ray\n"
        "from archlore.evaluator.records import EvalConfig\n"
        "from archlore.search.backends.ray import RayBackend\n"
        "from archlore.search.records import Candidate\n"
        "b = RayBackend(EvalConfig(dataset='synthetic', max_steps=1), workers=1,\n"
        "               init_kwargs={'num_cpus': 1, 'object_store_memory': 10**8})\n"
        "assert ray.is_initialized() and b.slots() == 1\n"
        "src = open('examples/resnet_tiny.py').read()\n"
        "ev = b.submit(Candidate(id=0, code=src)).result(timeout=120)\n"
        "assert ev.status == 'ok' and ev.scored_by.startswith('ray:'), ev.reason\n"
        "b.close()\n"
        "assert not ray.is_initialized()\n"
        "print('own-ray-ok')\n")
    root = Path(__file__).parents[2]
    # ray.init() in this process exported RAY_ADDRESS (the module cluster): drop it, or the
    # child would connect there instead of starting its own Ray
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=root, env=env)
    assert out.returncode == 0 and "own-ray-ok" in out.stdout, out.stderr[-3000:]
