"""CIFAR-10: archlore's open-space FairNAD front vs known networks and vs random search / REA.

One command, one fixed proxy recipe for everything, one CPU-feasible subset of the real
CIFAR-10 (``<data root>/cifar-10-batches-py``, JPEG-degraded pixels; see its README), read
through archlore's own ``cifar10`` loader (``--data-root``):

- the subset is class-balanced and drawn from the loader's own splits (training images from
  its training split, validation images from its fixed 10 % validation split, test images
  from the official test set), so a subset's validation image is never a training image of
  the full dataset; ``--image-size 16`` averages 2x2 pixel blocks (as ImageNet16 does);
- it is written once as an ``npz:`` dataset in a temporary directory (never in the
  repository), kept in memory by the evaluator and shared with every worker;
- ``--full`` uses the ``cifar10`` dataset itself (45,000 / 5,000 / 10,000, 32x32; a GPU job).

Then:

1. FairNAD, random search and REA in the open space at the same candidate budget and seeds
   (seed-major order, so an interrupted benchmark has whole seeds); every method with its
   default options, the offline mutator, no post-search proxy check;
2. the reference networks (``search.spaces.references``: ResNet-20, ResNet-56, MobileNetV2,
   the NAS-Bench-201 best cell) trained with the same recipe, seed 0, no MACs cap;
3. latency of every reference and front model measured afterwards in this process, one
   thread, batch 1, median of timed forwards (the same conditions for all of them);
4. ``summary.md`` (the references, each method's non-dominated set pooled over seeds,
   hypervolume mean ± std per method, the ratio FairNAD / random, the proxy's seed noise)
   and ``results.csv`` (every front member of every run and every reference).

Evaluations are deterministic for (code, recipe, seed), so one that an earlier run of the
same seed already trained (REA's random initial population is random search's first
candidates) is reused instead of retrained; every method is still charged its full budget.

    nice -n 10 python benchmarks/bench_cifar.py --data-root ../shared/data --image-size 16 \
        --n-train 5000 --n-val 1000 --n-test 1000 --epochs 3 --max-mflops 5 --budget 20 \
        --seeds 3
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import statistics
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


# --------------------------------------------------------------------------- data

def _balanced(y: np.ndarray, n: int, classes: int) -> np.ndarray:
    """The first ``n // classes`` indices of every class (the split's own order, which is
    already a fixed permutation), then the next ones in order up to ``n``; sorted."""
    if n > len(y):
        raise ValueError(f"asked for {n} images from a split of {len(y)}")
    per = n // classes
    picked = [np.flatnonzero(y == k)[:per] for k in range(classes)]
    idx = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    if len(idx) < n:  # n not a multiple of the classes, or a class too small
        rest = np.setdiff1d(np.arange(len(y)), idx, assume_unique=False)
        idx = np.concatenate([idx, rest[:n - len(idx)]])
    return np.sort(idx)


def downsample(x: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, size, size) by averaging blocks; H must be a multiple of size."""
    n, c, h, w = x.shape
    if h == size and w == size:
        return x
    if h % size or w % size:
        raise ValueError(f"cannot average {h}x{w} images down to {size}x{size}")
    fh, fw = h // size, w // size
    return x.reshape(n, c, size, fh, size, fw).mean(axis=(3, 5), dtype=np.float32)


def cifar_subset(data_root: str | os.PathLike, n_train: int, n_val: int, n_test: int,
                 size: int = 32) -> dict[str, np.ndarray]:
    """A fixed, class-balanced subset of archlore's ``cifar10`` splits (normalised float32,
    NCHW) as the arrays of an ``npz:`` dataset. Raises ``DatasetError`` (naming the missing
    files) when CIFAR-10 is not under ``data_root``."""
    from archlore.evaluator.data import load_dataset

    s = load_dataset("cifar10", data_root)
    tr = _balanced(s.train_y, n_train, s.num_classes)
    va = _balanced(s.val_y, n_val, s.num_classes)
    te = _balanced(s.test_y, n_test, s.num_classes)
    return {"x_train": downsample(s.train_x[tr], size), "y_train": s.train_y[tr],
            "x_val": downsample(s.val_x[va], size), "y_val": s.val_y[va],
            "x_test": downsample(s.test_x[te], size), "y_test": s.test_y[te]}


def write_subset(data_root: str | os.PathLike, out: Path, n_train: int, n_val: int,
                 n_test: int, size: int = 32) -> Path:
    np.savez(out, **cifar_subset(data_root, n_train, n_val, n_test, size))
    return out


# --------------------------------------------------------------------------- evaluation

class SharedPool:
    """A pool backend over one shared ``EvaluatorPool`` for all runs of the benchmark, which
    reuses the evaluation of a (code, recipe, seed) it has already scored: training is
    deterministic for those, so the reused result is the one retraining would give.
    ``close`` leaves the shared pool running (``shutdown`` stops it)."""

    name = "pool"

    def __init__(self, pool: Any, workers: int) -> None:
        self._pool = pool
        self.workers = workers
        self.eval_config: Any = None  # set per run (``for_run``)
        self._done: dict[str, Future] = {}
        self.trained = 0
        self.reused = 0

    def for_run(self, eval_config: Any) -> SharedPool:
        self.eval_config = eval_config
        return self

    def key(self, code: str, cfg: Any) -> str:
        blob = code + "\0" + cfg.model_dump_json(exclude={"timeout_s"})
        return hashlib.sha256(blob.encode()).hexdigest()

    def slots(self) -> int:
        return self.workers

    def submit(self, candidate: Any) -> Future:
        from archlore.evaluator.records import Evaluation
        from archlore.search.backends.base import resolved

        if not candidate.code:
            return resolved(Evaluation(status="rejected", stage="policy",
                                       reason="candidate has no code to evaluate",
                                       dataset=self.eval_config.dataset,
                                       seed=self.eval_config.seed))
        return self.submit_code(candidate.code, self.eval_config)

    def submit_code(self, code: str, cfg: Any) -> Future:
        k = self.key(code, cfg)
        fut = self._done.get(k)
        # a finished failure that was the machine's fault (timeout, worker) is not reused
        if fut is not None and not (fut.done() and (fut.exception() is not None or
                                                    fut.result().status == "timeout" or
                                                    fut.result().stage == "worker")):
            self.reused += 1
            return fut
        self.trained += 1
        fut = self._pool.submit(code, cfg)
        self._done[k] = fut
        return fut

    def close(self, cancel: bool = False) -> None:
        pass

    def shutdown(self) -> None:
        self._pool.close()

    def describe(self) -> dict[str, Any]:
        return {"backend": "pool (shared, reusing)", "workers": self.workers}


def latency_ms(code: str, in_channels: int, num_classes: int, size: int, reps: int = 40,
               warmup: int = 5) -> float:
    """Median forward time at batch 1 (ms), one thread, eval mode, in this process. Only for
    code archlore rendered itself (references, the offline mutator's children)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ns: dict[str, Any] = {}
        exec(compile(code, "<model>", "exec"), ns)  # noqa: S102 - our own rendered code
        torch.manual_seed(0)
        net = ns["Net"](num_classes=num_classes, in_channels=in_channels).eval()
        x = torch.randn(1, in_channels, size, size)
        times = []
        with torch.no_grad():
            for i in range(warmup + reps):
                t = time.perf_counter()
                net(x)
                if i >= warmup:
                    times.append(time.perf_counter() - t)
        return 1e3 * statistics.median(times)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- summary

def pooled_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (val_acc up, macs down) that no other row dominates, by MACs."""
    from archlore.search.pareto import non_dominated_mask

    if not rows:
        return []
    pts = np.array([[-r["val_acc"], r["macs"]] for r in rows], dtype=float)
    keep = non_dominated_mask(pts)
    return sorted((r for r, k in zip(rows, keep, strict=True) if k), key=lambda r: r["macs"])


def seed_noise(evals: list[tuple[str, int, float]]) -> tuple[float, int]:
    """Mean over architectures of the std of validation accuracy across training seeds
    (architectures identified by their code, trained with >= 2 seeds); (mean std, count)."""
    by_code: dict[str, dict[int, float]] = {}
    for code, seed, acc in evals:
        by_code.setdefault(code, {})[seed] = acc
    stds = [float(np.std(list(v.values()), ddof=1)) for v in by_code.values() if len(v) >= 2]
    return (float(np.mean(stds)) if stds else float("nan")), len(stds)


def table_row(name: str, r: dict[str, Any]) -> str:
    return (f"| {name} | {100 * r['val_acc']:.1f} | {100 * r['test_acc']:.1f} | "
            f"{r['macs'] / 1e6:.2f} | {r['params']:,} | {r['latency_ms']:.2f} | "
            f"{r['train_s']:.0f} |")


def summarise(refs: list[dict[str, Any]], fronts: dict[str, list[dict[str, Any]]],
              hv: dict[str, list[float]], header: str, noise: tuple[float, int],
              means: dict[str, list[float]] | None = None) -> str:
    """``means``: per method and seed, the mean validation accuracy of all valid candidates."""
    lines = [header, "",
             "| model | val acc % | test acc % | MMACs | params | latency ms | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in refs:
        lines.append(table_row(f"{r['name']} (reference)", r) if r["ok"] else
                     f"| {r['name']} (reference) | {r['status']}: {r['reason'][:60]} ||||||")
    for method, rows in fronts.items():
        for r in pooled_front(rows):
            lines.append(table_row(f"{method} seed {r['seed']} #{r['id']}", r))
    lines.append("")
    for method, v in hv.items():
        best = [max((r["val_acc"] for r in fronts[method] if r["seed"] == s), default=0.0)
                for s in range(len(v))]
        std = np.std(v, ddof=1) if len(v) > 1 else 0.0
        lines.append(f"- {method}: hypervolume {np.mean(v):.4f} ± {std:.4f} (mean ± std over "
                     f"{len(v)} seeds: {', '.join(f'{x:.4f}' for x in v)}); best val acc "
                     f"{', '.join(f'{100 * b:.1f}' for b in best)} %"
                     + (f"; mean val acc of its candidates "
                        f"{', '.join(f'{100 * m:.1f}' for m in means[method])} %"
                        if means and means.get(method) else ""))
    if hv.get("fairnad") and hv.get("random") and np.mean(hv["random"]) > 0:
        n = min(len(hv["fairnad"]), len(hv["random"]))
        paired = [a / b for a, b in zip(hv["fairnad"][:n], hv["random"][:n], strict=True) if b > 0]
        lines.append(f"- hypervolume ratio FairNAD / random: "
                     f"{np.mean(hv['fairnad']) / np.mean(hv['random']):.3f} (of the means; per "
                     f"seed {', '.join(f'{x:.3f}' for x in paired)})")
    if noise[1]:
        lines.append(f"- proxy seed noise: validation accuracy of the same architecture trained "
                     f"with different seeds varies by {100 * noise[0]:.1f} points (mean std over "
                     f"{noise[1]} architectures)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_ROOT,
                    help="directory holding cifar-10-batches-py/ (default ../shared/data)")
    ap.add_argument("--full", action="store_true",
                    help="the whole cifar10 dataset at 32x32 instead of a subset (GPU)")
    ap.add_argument("--image-size", type=int, default=16, choices=(8, 16, 32))
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--devices", default=None, help="e.g. cuda:0 (default: cpu or all GPUs)")
    ap.add_argument("--max-mflops", type=float, default=5.0)
    ap.add_argument("--strategies", default="fairnad,random,rea")
    ap.add_argument("--references", default="resnet20,resnet56,mobilenetv2,nb201-best")
    ap.add_argument("--out", type=Path, default=Path("bench-cifar-out"))
    ap.add_argument("--work", type=Path, default=None,
                    help="where the data subset and the runs go (default: a new temp dir)")
    ap.add_argument("--stop-after-min", type=float, default=None,
                    help="start no further seed after this many minutes (the references and "
                         "the summary still run); the summary says how many seeds were done")
    args = ap.parse_args(argv)

    from archlore.agent.mutators import make_mutator
    from archlore.evaluator import EvalConfig, EvaluatorPool
    from archlore.evaluator.data import dataset_info
    from archlore.search.config import SearchConfig
    from archlore.search.front import front_of
    from archlore.search.objectives import get_objectives
    from archlore.search.protocol import Constraints
    from archlore.search.run import run_search
    from archlore.search.spaces.references import reference_code
    from archlore.search.store import RunStore

    t_start = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="archlore-cifar-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.full:
        dataset, data_root, size = "cifar10", str(args.data_root), 32
        sizes = "45000/5000/10000 (full)"
    else:
        npz = write_subset(args.data_root, work / "cifar10-subset.npz", args.n_train,
                           args.n_val, args.n_test, args.image_size)
        dataset, data_root, size = f"npz:{npz}", None, args.image_size
        sizes = f"{args.n_train}/{args.n_val}/{args.n_test} (class-balanced subset)"
    in_ch, classes, size = dataset_info(dataset, data_root)
    c = Constraints(dataset=dataset, in_channels=in_ch, num_classes=classes, image_size=size)
    header = (f"CIFAR-10 {size}x{size}, train/val/test {sizes}; recipe: {args.epochs:g} epochs, "
              f"batch {args.batch_size}, default lr/wd/label smoothing, seeds 0..{args.seeds - 1}; "
              f"search: budget {args.budget} per method and seed, cap {args.max_mflops:g} MMACs, "
              f"{args.workers} workers")
    print(f"load {os.getloadavg()[0]:.1f}; {header}", flush=True)

    devices = args.devices.split(",") if args.devices else None
    shared = SharedPool(EvaluatorPool(args.workers, devices), args.workers)
    recipe = {"epochs": args.epochs, "batch_size": args.batch_size}

    def eval_config(seed: int, cap: float | None) -> Any:
        return EvalConfig(dataset=dataset, data_root=data_root, seed=seed, timeout_s=3600,
                          measure_latency=False, max_mmacs=cap, **recipe)

    def row(ev: Any, code: str, **extra: Any) -> dict[str, Any]:
        return {**extra, "ok": ev.ok, "status": ev.status, "reason": ev.reason,
                "val_acc": ev.val_acc or 0.0, "test_acc": ev.test_acc or 0.0,
                "macs": ev.macs or 0, "params": ev.params or 0,
                "train_s": ev.train_seconds or 0.0, "latency_ms": float("nan"), "code": code,
                "code_sha": hashlib.sha256(code.encode()).hexdigest()[:12]}

    refs: list[dict[str, Any]] = []
    objectives = get_objectives(["val_acc", "macs"])
    runs = work / "runs"
    hv: dict[str, list[float]] = {}
    fronts: dict[str, list[dict[str, Any]]] = {}
    evals: list[tuple[str, int, float]] = []
    means: dict[str, list[float]] = {}
    strategies = [s for s in args.strategies.split(",") if s]
    stopped = ""
    loads: list[float] = [os.getloadavg()[0]]
    for seed in range(args.seeds):
        if stopped:
            break
        if args.stop_after_min is not None and time.monotonic() - t_start > 60 * args.stop_after_min:
            stopped = f"--stop-after-min {args.stop_after_min:g}: seeds {seed}.. skipped"
            break
        for strategy in strategies:
            t0 = time.monotonic()
            trained0, reused0 = shared.trained, shared.reused
            sc = SearchConfig(name=f"{strategy}-{seed}", strategy=strategy, dataset=dataset,
                              data_root=data_root, budget=args.budget, seed=seed,
                              max_mflops=args.max_mflops, hv_ref_mflops=args.max_mflops,
                              recipe=recipe, evaluation={"workers": args.workers,
                                                         "timeout_s": 3600},
                              proxy_check={"candidates": 0})
            res = run_search(sc, runs, mutator=make_mutator("offline"),
                             backend=shared.for_run(sc.eval_config()), write_outputs=False)
            if res.status != "finished":  # Ctrl-C: run_search keeps the run and returns
                stopped = f"{strategy} seed {seed} {res.status} ({res.stop_reason or 'Ctrl-C'})"
                break
            hv.setdefault(strategy, []).append(res.hypervolume)
            with RunStore(runs / sc.name, create=False) as st:
                cands = st.candidates()
            for cand in cands:
                if cand.evaluation is not None and cand.evaluation.ok and cand.code:
                    evals.append((cand.code, seed, cand.evaluation.val_acc))
            accs = [x.evaluation.val_acc for x in cands if x.evaluation is not None
                    and x.evaluation.ok and x.evaluation.val_acc is not None]
            means.setdefault(strategy, []).append(float(np.mean(accs)) if accs else 0.0)
            front = front_of(cands, objectives)
            fronts.setdefault(strategy, []).extend(
                row(f.evaluation, f.code, method=strategy, seed=seed, id=f.id) for f in front)
            print(f"{strategy} seed {seed}: hv {res.hypervolume:.4f}, front {len(front)}, best "
                  f"{100 * (res.best_val_acc or 0):.1f} %, {res.counts}, trained "
                  f"{shared.trained - trained0} reused {shared.reused - reused0}, "
                  f"{time.monotonic() - t0:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            loads.append(os.getloadavg()[0])
            # after every run: a summary of what is done so far
            noise = seed_noise(evals)
            (args.out / "summary.md").write_text(summarise(refs, fronts, hv, header, noise,
                                                               means))
    # references last (a benchmark stopped early still has whole searches): the same
    # recipe, seed 0 (the first search seed), no MACs cap
    interrupted = bool(stopped) and not stopped.startswith("--stop-after-min")
    ref_codes = {n: reference_code(n, c) for n in args.references.split(",")
                 if n and not interrupted}
    ref_futs = {n: shared.submit_code(code, eval_config(0, None)) for n, code in ref_codes.items()}
    for n, fut in ref_futs.items():
        ev = fut.result()
        refs.append(row(ev, ref_codes[n], name=n, method="reference", seed=0, id=-1))
        print(f"{n}: {ev.status} val {100 * (ev.val_acc or 0):.1f} % "
              f"{(ev.macs or 0) / 1e6:.2f} MMACs {ev.train_seconds or 0:.0f} s", flush=True)

    shared.shutdown()
    # latency: every reference and front model, here, after the training is over
    measured: dict[str, float] = {}
    for r in refs + [r for rows in fronts.values() for r in rows]:
        if r["ok"]:
            if r["code_sha"] not in measured:
                measured[r["code_sha"]] = latency_ms(r["code"], in_ch, classes, size)
            r["latency_ms"] = measured[r["code_sha"]]

    fields = ["method", "seed", "id", "name", "status", "val_acc", "test_acc", "macs", "params",
              "latency_ms", "train_s", "code_sha"]
    with open(args.out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in refs + [r for rows in fronts.values() for r in rows]:
            w.writerow(r)
    footer = (f"\n- stopped early: {stopped}" if stopped else "") + (
              f"\n- {shared.trained} trainings, {shared.reused} reused evaluations; "
              f"{(time.monotonic() - t_start) / 60:.0f} min wall; 1-min load average "
              f"{min(loads):.1f}-{max(loads):.1f} (sampled after each run), "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; runs in {runs}\n")
    summary = summarise(refs, fronts, hv, header, seed_noise(evals), means) + footer
    (args.out / "summary.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
