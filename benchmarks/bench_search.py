"""Search-loop benchmark (one command): ``python benchmarks/bench_search.py``.

1. Loop overhead per candidate, excluding training and LLM time: the real engine, FairNAD,
   novelty filter and SQLite store, with an instant backend (metrics from the code hash) and
   a trivial mutator (a realistic rendered net with one number changed), over
   ``--candidates`` (10^4) candidates; reported over the whole run and over the last 10 %
   (the store then holds ~10^4 candidates). Target < 20 ms.
2. Novelty query latency with ``--stored`` (10^5) candidates in the index: the LSH lookup +
   verification of a query's signature, the full check including canonicalising its code,
   and an exact Jaccard scan over the same stored shingle sets. Target < 1 ms (LSH).

Options: ``--candidates N --stored N --queries N --quick`` (quick: 10^3 / 10^4).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archlore.evaluator.records import Evaluation  # noqa: E402
from archlore.search.config import SearchConfig  # noqa: E402
from archlore.search.novelty import NoveltyFilter, canonical_tokens, shingle_hashes  # noqa: E402
from archlore.search.protocol import Constraints, MutationRequest, MutationResult  # noqa: E402
from archlore.search.run import run_search  # noqa: E402
from archlore.search.spaces.open import OpenSpace  # noqa: E402

SMALL_NET = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, stride=2)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, stride=2)
        self.bn3 = nn.BatchNorm2d(128)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        x = self.act(self.bn3(self.conv3(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(x))
"""


def base_code() -> str:
    space = OpenSpace()
    return space.render(space.seeds(Constraints())[1])


class TrivialMutator:
    """Returns the base net with its classifier width replaced by a fresh number: unique code,
    near-zero cost (isolates the loop from LLM / offline-mutation time)."""

    name = "trivial"

    def __init__(self) -> None:
        self.code = base_code()
        self.n = 0

    def mutate(self, request: MutationRequest) -> MutationResult:
        self.n += 1
        code = self.code.replace("num_classes)", f"num_classes) * {request.seed % 100003} // 1")
        return MutationResult(code=code + f"\nWIDTH = {request.seed}\n", mode="offline", notes="t")


class InstantBackend:
    """Evaluations derived from the code hash, resolved at once (no training)."""

    workers = 2

    def submit(self, candidate) -> Future[Evaluation]:
        h = int(hashlib.sha256((candidate.code or "").encode()).hexdigest()[:12], 16)
        fut: Future[Evaluation] = Future()
        fut.set_result(Evaluation(status="ok", stage="eval", val_acc=0.5 + (h % 5000) / 10000,
                                  test_acc=0.5, macs=10_000 + (h >> 20) % 1_000_000, params=1000))
        return fut

    def close(self) -> None:
        pass


def bench_loop(n: int) -> dict[str, float]:
    times: list[float] = []
    last = [time.perf_counter()]

    def progress(snap: dict) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SearchConfig(name="bench", budget=n, seed=0, max_proposals_factor=1.5,
                           options={"chunks": False})
        t0 = time.perf_counter()
        res = run_search(cfg, tmp, mutator=TrivialMutator(), backend=InstantBackend(), progress=progress,
                         write_outputs=False)
        total = time.perf_counter() - t0
        stored = res.counts["candidates"]
    tail = times[-max(1, len(times) // 10):]
    return {"candidates": stored, "total_s": total, "mean_ms": 1000 * total / max(1, stored),
            "tail_mean_ms": 1000 * statistics.fmean(tail), "tail_p95_ms":
            1000 * float(np.percentile(tail, 95))}


def bench_novelty(stored: int, queries: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    nf = NoveltyFilter(threshold=0.9)
    base = canonical_tokens(SMALL_NET)
    numbers = [i for i, t in enumerate(base) if t.isdigit()]
    exact_sets: list[np.ndarray] = []

    def variant() -> list[str]:
        toks = list(base)
        for i in rng.choice(numbers, size=3, replace=False):  # three settings changed
            toks[i] = str(int(rng.integers(1, 4096)))
        return toks

    def ids(toks: list[str]) -> np.ndarray:  # the same shingle hashes the filter MinHashes
        return np.unique(shingle_hashes(toks, nf.shingle))

    t0 = time.perf_counter()
    for key in range(stored):
        toks = variant()
        nf.add(key, signature=nf.signature_of_tokens(toks))
        exact_sets.append(ids(toks))
    build_s = time.perf_counter() - t0
    # exact scan, vectorised: every stored shingle id in one array, tagged with its set
    flat_ids = np.concatenate(exact_sets)
    owner = np.repeat(np.arange(stored), [len(x) for x in exact_sets])
    sizes = np.array([len(x) for x in exact_sets])

    lsh_ms, raw_ms, full_ms, scan_ms, hits = [], [], [], [], []
    code = SMALL_NET
    for q in range(queries):
        toks = variant()
        sig = nf.signature_of_tokens(toks)
        t = time.perf_counter()
        nf.check(signature=sig)
        lsh_ms.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        hits.append(len(nf._lsh.query(sig[2])))  # the raw LSH lookup, whatever the settings
        raw_ms.append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        nf.check(code.replace("num_classes)", f"num_classes) + {q}"))
        full_ms.append(1000 * (time.perf_counter() - t))
        qs = ids(toks)
        t = time.perf_counter()
        inter = np.bincount(owner[np.isin(flat_ids, qs)], minlength=stored)
        sims = inter / (sizes + len(qs) - inter)
        _ = int(np.argmax(sims))
        scan_ms.append(1000 * (time.perf_counter() - t))
    return {"stored": stored, "build_s": build_s, "lsh_ms": statistics.median(lsh_ms),
            "raw_lsh_ms": statistics.median(raw_ms), "raw_hits": statistics.median(hits),
            "lsh_p95_ms": float(np.percentile(lsh_ms, 95)),
            "full_check_ms": statistics.median(full_ms), "exact_scan_ms": statistics.median(scan_ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=10_000)
    ap.add_argument("--stored", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.candidates, a.stored, a.queries = 1000, 10_000, 10
    loop = bench_loop(a.candidates)
    nov = bench_novelty(a.stored, a.queries)
    print("\nsearch loop overhead (instant backend, trivial mutator; FairNAD + novelty + SQLite)")
    print(f"  candidates stored         {loop['candidates']:>10d}")
    print(f"  mean per candidate        {loop['mean_ms']:>10.2f} ms   (target < 20 ms)")
    print(f"  last 10 % (store ~full)   {loop['tail_mean_ms']:>10.2f} ms   p95 {loop['tail_p95_ms']:.2f} ms")
    print(f"\nnovelty filter with {nov['stored']} stored candidates (index built in {nov['build_s']:.0f} s)")
    print(f"  check (signature given)   {nov['lsh_ms']:>10.3f} ms   p95 {nov['lsh_p95_ms']:.3f} ms"
          "   (target < 1 ms)")
    print(f"  raw MinHashLSH query      {nov['raw_lsh_ms']:>10.3f} ms   "
          f"(median {nov['raw_hits']:.0f} candidates returned)")
    print(f"  full check incl. canonicalising the code {nov['full_check_ms']:.3f} ms")
    print(f"  exact Jaccard scan        {nov['exact_scan_ms']:>10.1f} ms   "
          f"({nov['exact_scan_ms'] / nov['raw_lsh_ms']:.0f}x the raw LSH query)")


if __name__ == "__main__":
    main()
