"""Ray backend benchmarks, one command: ``python benchmarks/bench_ray.py [--quick]``.

(a) overhead: the same tiny candidate scored one at a time through this machine's
    ``EvaluatorPool`` (1 worker) and through the ``ray`` backend on a 1-node local Ray
    (1 slot), alternating; reported as the median added milliseconds per candidate. Also for
    a candidate the policy rejects (no worker: the pure Ray round trip, free of training noise).
(b) scaling: a simulated cluster on loopback (``ray.cluster_utils.Cluster``: a head with no
    CPUs plus 1, then 2, then 4 one-CPU nodes joining one running backend) scoring candidates
    that mostly wait (``time.sleep`` in the constructor, so the 2 cores are not the limit;
    static policy off for them, OS containment on); throughput per slot count and the scaling
    ratio ``throughput(k) / (k * throughput(1))``.
(c) recovery: with 4 nodes busy, one node is killed (raylet SIGKILL); time until its
    candidates are resubmitted (loss noticed) and until all results are in, against the
    no-loss time of the same batch. Ray's default health-check settings unless ``--fast-health``.
Load average (``os.getloadavg``) is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from archlore.evaluator import EvalConfig, EvaluatorPool  # noqa: E402
from archlore.search.backends.ray import RayBackend  # noqa: E402
from archlore.search.records import Candidate  # noqa: E402

TINY_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))
'''
REJECTED = TINY_NET.replace("import torch\n", "import os\nimport torch\n", 1)
TINY = EvalConfig(dataset="synthetic", max_steps=1, timeout_s=60.0)
WAITING = EvalConfig(dataset="synthetic", max_steps=1, timeout_s=120.0, static_policy=False)
NODE = {"num_cpus": 1, "object_store_memory": 10**8}


def waiting(seconds: float, tag: int) -> str:
    return TINY_NET.replace("import torch\n", "import time\nimport torch\n", 1).replace(
        "        self.fc = nn.Linear(in_channels, num_classes)",
        f"        self.fc = nn.Linear(in_channels, num_classes)  # {tag}\n"
        f"        time.sleep({seconds})")


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def overhead(n: int) -> dict:
    ray.init(address="local", num_cpus=1, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    backend = RayBackend(TINY, workers=1)
    pool = EvaluatorPool(workers=1, devices=["cpu"])
    try:
        for _ in range(2):  # warm both paths
            pool.submit(TINY_NET, TINY).result()
            backend.submit(Candidate(id=0, code=TINY_NET)).result()
        out: dict = {"candidates": n}
        for kind, code, status in (("trained", TINY_NET, "ok"), ("policy_rejected", REJECTED,
                                                                  "rejected")):
            local, remote = [], []
            for i in range(n):
                t = time.perf_counter()
                ev = pool.submit(code, TINY).result()
                local.append(time.perf_counter() - t)
                t = time.perf_counter()
                ev2 = backend.submit(Candidate(id=i, code=code)).result()
                remote.append(time.perf_counter() - t)
                assert ev.status == ev2.status == status, (ev.reason, ev2.reason)
            med_l, med_r = statistics.median(local), statistics.median(remote)
            out[kind] = {"pool_median_ms": 1000 * med_l, "ray_median_ms": 1000 * med_r,
                         "added_median_ms": 1000 * (med_r - med_l),
                         "added_mean_ms": 1000 * (statistics.mean(remote)
                                                  - statistics.mean(local))}
    finally:
        backend.close()
        pool.close()
        ray.shutdown()
    return out


def _batch(backend: RayBackend, n: int, seconds: float, start: int) -> tuple[float, list]:
    t = time.perf_counter()
    futs = [backend.submit(Candidate(id=start + i, code=waiting(seconds, start + i)))
            for i in range(n)]
    res = [f.result(timeout=600) for f in futs]
    bad = [r.reason for r in res if r.status != "ok"]
    assert not bad, bad
    return time.perf_counter() - t, res


def scaling_and_recovery(seconds: float, rounds: int, fast_health: bool) -> dict:
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 0, "object_store_memory": 10**8, "include_dashboard": False}
    if fast_health:
        head["_system_config"] = {"health_check_period_ms": 500,
                                  "health_check_failure_threshold": 4}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    nodes = [cluster.add_node(**NODE)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
    out: dict = {"wait_s": seconds, "rounds": rounds, "throughput_per_min": {}}
    backend = RayBackend(WAITING, workers=1, refresh_s=0.5)
    try:
        _batch(backend, 1, 0.0, 10_000)  # warm
        start = 0
        for k in (1, 2, 4):
            while len(nodes) < k:
                nodes.append(cluster.add_node(**NODE))
            end = time.monotonic() + 120
            while backend.slots() < k and time.monotonic() < end:
                time.sleep(0.1)
            assert backend.slots() == k, backend.describe()
            _batch(backend, k, 0.0, 20_000 + k)  # warm the new nodes' fork servers
            wall, _ = _batch(backend, rounds * k, seconds, start)
            start += rounds * k
            out["throughput_per_min"][k] = 60.0 * rounds * k / wall
        t1 = out["throughput_per_min"][1]
        out["scaling_ratio"] = {k: v / (k * t1) for k, v in out["throughput_per_min"].items()}
        # (c) recovery: one batch of 4 on 4 nodes, one node killed 1 s in
        base, _ = _batch(backend, 4, seconds, 30_000)
        before = backend.counts["resubmitted"]
        t0 = time.perf_counter()
        futs = [backend.submit(Candidate(id=40_000 + i, code=waiting(seconds, 40_000 + i)))
                for i in range(4)]
        time.sleep(1.0)
        kill_at = time.monotonic() - backend.started
        t_kill = time.perf_counter()
        cluster.remove_node(nodes[-1], allow_graceful=False)
        res = [f.result(timeout=600) for f in futs]
        done = time.perf_counter()
        assert all(r.status == "ok" for r in res), [r.reason for r in res]
        resub = [e for e in backend.resubmissions if e["t"] >= kill_at]
        out["recovery"] = {
            "batch_no_loss_s": base, "batch_with_loss_s": done - t0,
            "loss_noticed_after_kill_s": (resub[0]["t"] - kill_at) if resub else None,
            "all_results_after_kill_s": done - t_kill,
            "resubmitted": backend.counts["resubmitted"] - before,
            "health_check": "fast (0.5 s x 4)" if fast_health else "ray defaults"}
    finally:
        backend.close()
        ray.shutdown()
        cluster.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer candidates")
    ap.add_argument("--fast-health", action="store_true",
                    help="GCS health check every 0.5 s (4 misses) instead of Ray's defaults")
    args = ap.parse_args()
    print(load(), f"cpus {os.cpu_count()}", flush=True)
    res = {"overhead": overhead(8 if args.quick else 30)}
    print(json.dumps(res["overhead"], indent=1), flush=True)
    res["scaling"] = scaling_and_recovery(2.0 if args.quick else 3.0, 2 if args.quick else 3,
                                          args.fast_health)
    print(json.dumps(res["scaling"], indent=1), flush=True)
    print(load(), flush=True)
    o, s = res["overhead"], res["scaling"]
    for kind in ("trained", "policy_rejected"):
        x = o[kind]
        print(f"\noverhead ({kind}): {x['added_median_ms']:+.1f} ms per candidate (median; pool "
              f"{x['pool_median_ms']:.1f} ms, ray {x['ray_median_ms']:.1f} ms; mean "
              f"{x['added_mean_ms']:+.1f} ms)")
    for k, v in s["throughput_per_min"].items():
        print(f"slots {k}: {v:.1f} candidates/min, {s['scaling_ratio'][k]:.2f} x linear")
    r = s["recovery"]
    print(f"node kill: loss noticed after {r['loss_noticed_after_kill_s']:.1f} s, all results "
          f"{r['all_results_after_kill_s']:.1f} s after the kill (batch {r['batch_no_loss_s']:.1f} s "
          f"without loss, {r['batch_with_loss_s']:.1f} s with; {r['health_check']})")


if __name__ == "__main__":
    main()
