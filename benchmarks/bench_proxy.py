"""Proxy reliability on real data: sigma2_arch, sigma2_noise, SNR and the closed form's
predicted Spearman vs the measured one, for 1- and 3-epoch proxies against a 10-epoch
reference (random open-space architectures, several seeds).

    nice -n 10 python benchmarks/bench_proxy.py --dataset digits --archs 30 --seeds 3
    nice -n 10 python benchmarks/bench_proxy.py --dataset fashion-mnist --subset 500 --size 14

``--subset N`` trains on a class-balanced N-image subset of the training split (written as an
``npz:`` dataset with the original test split's first N/4 images), for CPU-sized runs of a
large dataset; the figures then describe that subset, not the full dataset. ``--size S``
average-pools its images down to S x S (14 for Fashion-MNIST: a quarter of the compute).
Results (JSON) go to ``--out``; figures are in docs/notes/proxy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def subset_npz(dataset: str, n: int, out: Path, size: int | None = None, pad: int = 2) -> str:
    """A class-balanced ``n``-image training subset (and the test split's first
    ``max(200, n/4)`` images) as an ``npz:`` dataset; ``size``: images average-pooled down to
    ``size`` x ``size`` (an integer factor of the side), to make CPU runs cheaper; ``pad``: the
    random-crop padding of the training augmentation."""
    from archlore.evaluator.data import load_dataset

    s = load_dataset(dataset)
    rng = np.random.default_rng(0)
    per = n // s.num_classes
    idx = np.concatenate([rng.permutation(np.flatnonzero(s.train_y == c))[:per]
                          for c in range(s.num_classes)])
    nt = max(200, n // 4)
    # back to uint8-like 0..255 images: the npz loader normalises with train statistics
    def raw(x: np.ndarray) -> np.ndarray:
        lo, hi = x.min(), x.max()
        return np.round(255 * (x - lo) / max(hi - lo, 1e-9)).astype(np.uint8)

    def pool(x: np.ndarray) -> np.ndarray:
        if size is None or size == x.shape[-1]:
            return x
        f = x.shape[-1] // size
        if f * size != x.shape[-1]:
            raise ValueError(f"size {size} does not divide the image side {x.shape[-1]}")
        return x.reshape(*x.shape[:-2], size, f, size, f).mean(axis=(-3, -1))

    if out.exists():  # written by an earlier call (deterministic): runs may be reading it
        return f"npz:{out}?val=0.2&flip=0&pad={pad}"
    np.savez(out, x_train=raw(pool(s.train_x[idx]))[:, 0], y_train=s.train_y[idx],
             x_test=raw(pool(s.test_x[:nt]))[:, 0], y_test=s.test_y[:nt])
    return f"npz:{out}?val=0.2&flip=0&pad={pad}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--size", type=int, default=None,
                    help="With --subset: average-pool the images down to SIZE x SIZE.")
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--proxies", default="1,3")
    ap.add_argument("--ref", type=float, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("bench-proxy.json"))
    ap.add_argument("--reassess", type=Path, default=None,
                    help="Recompute the statistics from the scores in an earlier --out file.")
    args = ap.parse_args()
    if args.reassess is not None:
        from archlore.search.proxy import assess, format_report

        old = json.loads(args.reassess.read_text())
        ref_e = old["ref_epochs"]
        for key, r in old["reports"].items():
            if key.endswith("-alone"):
                rep = assess(r["scores"], None, n_boot=0, epochs=ref_e, dataset=old["dataset"])
            else:
                rep = assess(r["scores"], r["ref_scores"], n_boot=args.bootstrap,
                             epochs=float(key), ref_epochs=ref_e, dataset=old["dataset"])
            old["reports"][key] = rep.model_dump(mode="json")
            print("\n".join(format_report(rep)))
        args.out.write_text(json.dumps(old, indent=1))
        return

    from archlore.evaluator.pool import EvaluatorPool
    from archlore.evaluator.records import EvalConfig
    from archlore.search.proxy import assess, format_report, sample_codes, score_matrix

    dataset = args.dataset
    if args.subset:
        dataset = subset_npz(
            args.dataset, args.subset,
            Path(f"/tmp/archlore-{args.dataset}-{args.subset}-{args.size or 'full'}.npz"),
            size=args.size)
    # a subset keeps the full dataset's image shape (same architectures); pooled images not
    codes = sample_codes(args.dataset if args.subset and not args.size else dataset,
                         args.archs, args.seed)
    cfg = EvalConfig(dataset=dataset, seed=args.seed, timeout_s=1800, measure_latency=False)
    seeds = [args.seed + i for i in range(args.seeds)]
    budgets = sorted({float(e) for e in args.proxies.split(",")} | {args.ref})
    t0 = time.monotonic()
    scores: dict[float, list] = {}
    secs: dict[float, float] = {}
    with EvaluatorPool(args.workers) as pool:
        for e in budgets:
            t = time.monotonic()
            scores[e], evs = score_matrix(codes, cfg, pool.submit, epochs=e, seeds=seeds)
            secs[e] = time.monotonic() - t
            bad = sum(1 for row in evs for ev in row if not ev.ok)
            print(f"{e:g} epochs: {secs[e]:.0f} s, {bad} failed evaluations", flush=True)
    out: dict = {"dataset": args.dataset, "subset": args.subset, "size": args.size,
                 "archs": len(codes),
                 "seeds": args.seeds, "ref_epochs": args.ref, "seconds": secs,
                 "load": os.getloadavg(), "reports": {}}
    ref = scores[args.ref]
    for e in budgets:
        if e == args.ref:
            continue
        rep = assess(scores[e], ref, n_boot=args.bootstrap, metric="val_acc",
                     dataset=args.dataset, epochs=e, ref_epochs=args.ref)
        out["reports"][f"{e:g}"] = rep.model_dump(mode="json")
        print("\n".join(format_report(rep)), flush=True)
    rep = assess(ref, None, n_boot=0, dataset=args.dataset, epochs=args.ref)
    out["reports"][f"{args.ref:g}-alone"] = rep.model_dump(mode="json")
    print("\n".join(format_report(rep)))
    out["total_seconds"] = time.monotonic() - t0
    args.out.write_text(json.dumps(out, indent=1))
    print(f"total {out['total_seconds']:.0f} s, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
