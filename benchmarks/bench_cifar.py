"""CIFAR-10: archlore's open-space FairNAD front vs known networks and vs random search / REA.

One command, one fixed proxy recipe for everything, one CPU-feasible subset of the real
CIFAR-10 (``../shared/data/cifar-10-batches-py``, JPEG-degraded pixels; see its README):
``--n-train`` training, ``--n-val`` validation and ``--n-test`` test images drawn with a fixed
seed, written once as an ``npz:`` dataset. On a GPU use ``--n-train 45000 --n-val 5000
--n-test 10000`` (the full splits).

1. the reference networks (``search.spaces.references``: ResNet-20, ResNet-56, MobileNetV2,
   the NAS-Bench-201 best cell) scored by the same cascade and recipe;
2. FairNAD, random search and REA in the open space at the same candidate budget and seeds;
3. a table of each front (val/test acc, MACs, params, latency) and the hypervolume ratio
   FairNAD / random (mean over seeds).

    python benchmarks/bench_cifar.py --budget 24 --seeds 2 --epochs 2 --max-mflops 20
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar-10-batches-py"


def write_subset(src: Path, out: Path, n_train: int, n_val: int, n_test: int) -> Path:
    """A fixed random subset of CIFAR-10 as an npz dataset (uint8 NHWC)."""
    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(src / name, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(d[b"labels"], dtype=np.int64)

    parts = [load(f"data_batch_{i}") for i in range(1, 6)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = load("test_batch")
    rng = np.random.default_rng(20240601)
    idx = rng.permutation(len(x))
    tr, va = idx[:n_train], idx[n_train:n_train + n_val]
    te = rng.permutation(len(xt))[:n_test]
    np.savez(out, x_train=x[tr], y_train=y[tr], x_val=x[va], y_val=y[va], x_test=xt[te],
             y_test=yt[te])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--budget", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-mflops", type=float, default=20.0)
    ap.add_argument("--strategies", default="fairnad,random,rea")
    ap.add_argument("--references", default="resnet20,resnet56,mobilenetv2,nb201-best")
    ap.add_argument("--out", type=Path, default=Path("bench-cifar-out"))
    args = ap.parse_args()

    from archlore.agent.mutators import make_mutator
    from archlore.evaluator import EvalConfig, EvaluatorPool
    from archlore.search.config import SearchConfig
    from archlore.search.front import front_of
    from archlore.search.objectives import get_objectives
    from archlore.search.protocol import Constraints
    from archlore.search.run import run_search
    from archlore.search.spaces.references import reference_code
    from archlore.search.store import RunStore

    args.out.mkdir(parents=True, exist_ok=True)
    npz = write_subset(args.data, args.out / "cifar10-subset.npz", args.n_train, args.n_val,
                       args.n_test)
    dataset = f"npz:{npz.resolve()}"
    print(f"load {os.getloadavg()[0]:.1f}; CIFAR-10 subset {args.n_train}/{args.n_val}/"
          f"{args.n_test}, {args.epochs} epochs per candidate, budget {args.budget}, "
          f"{args.seeds} seeds, cap {args.max_mflops} MMACs")
    lines = ["| model | val acc % | test acc % | MMACs | params | latency ms | seconds |",
             "|---|---|---|---|---|---|---|"]
    c = Constraints(dataset="cifar10", in_channels=3, num_classes=10, image_size=32)
    pool = EvaluatorPool(args.workers)
    cfg = EvalConfig(dataset=dataset, epochs=args.epochs, seed=0, timeout_s=3600,
                     measure_latency=True)
    futures = {n: pool.submit(reference_code(n, c), cfg) for n in args.references.split(",")}
    for n, fut in futures.items():
        ev = fut.result()
        lines.append(f"| {n} (reference) | {100 * (ev.val_acc or 0):.2f} | "
                     f"{100 * (ev.test_acc or 0):.2f} | {(ev.macs or 0) / 1e6:.2f} | "
                     f"{ev.params or 0:,} | {ev.metrics.get('latency_ms', float('nan')):.3f} | "
                     f"{ev.train_seconds or 0:.0f} | " + ("" if ev.ok else f"{ev.status}: {ev.reason}"))
        print(lines[-1], flush=True)
    pool.close()

    objectives = get_objectives(["val_acc", "macs"])
    hv: dict[str, list[float]] = {}
    runs = Path(tempfile.mkdtemp(prefix="archlore-cifar-"))
    for strategy in args.strategies.split(","):
        for seed in range(args.seeds):
            t0 = time.monotonic()
            sc = SearchConfig(name=f"{strategy}-{seed}", strategy=strategy, dataset=dataset,
                              budget=args.budget, seed=seed, epochs=args.epochs,
                              max_mflops=args.max_mflops, workers=args.workers,
                              eval_timeout_s=3600, hv_ref_mflops=args.max_mflops)
            res = run_search(sc, runs, mutator=make_mutator("offline"))
            hv.setdefault(strategy, []).append(res.hypervolume)
            with RunStore(runs / sc.name, create=False) as st:
                front = front_of(st.candidates(), objectives)
            for f in sorted(front, key=lambda x: x.evaluation.macs)[-3:]:
                ev = f.evaluation
                lines.append(f"| {strategy} seed {seed} #{f.id} | {100 * ev.val_acc:.2f} | "
                             f"{100 * (ev.test_acc or 0):.2f} | {ev.macs / 1e6:.2f} | "
                             f"{ev.params:,} | {ev.metrics.get('latency_ms', float('nan')):.3f} "
                             f"| {time.monotonic() - t0:.0f} |")
            print(f"{strategy} seed {seed}: hv {res.hypervolume:.4f}, front {len(front)}, "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
    summary = "\n".join(lines) + "\n\n" + "\n".join(
        f"- {s}: hypervolume {np.mean(v):.4f} ± {np.std(v):.4f} over {len(v)} seeds"
        for s, v in hv.items())
    if "fairnad" in hv and "random" in hv and np.mean(hv["random"]) > 0:
        summary += f"\n- hypervolume ratio FairNAD / random: {np.mean(hv['fairnad']) / np.mean(hv['random']):.3f}"
    summary += f"\n- load {os.getloadavg()[0]:.1f} at the end; runs in {runs}"
    (args.out / "summary.md").write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
