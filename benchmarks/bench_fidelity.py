"""Single fidelity vs multi-fidelity (ASHA) at the same evaluation cost.

Random search on the open space, objectives val_acc up / MACs down. Single fidelity trains
``--sf-budget`` candidates for the top rung's epochs. Multi-fidelity gets rungs ``--rungs``
(reduction ``--eta``) and as many rung-0 candidates as make the same number of training epochs
under the ASHA rule (``n0 = N * top / sum_r(rungs[r] / eta**r)``; 3N for 1,3,9 and eta 3), and
is in any case stopped once its evaluations have cost as many CPU-seconds as the single-fidelity
run of the same seed.

Cost = CPU-seconds of the evaluation workers, all evaluations, every rung: the kernel's
accounting of each contained worker process (``metrics.worker_cpu_s``: user + system time),
so it does not depend on how loaded the shared machine is; the wall-clock stage + start-up
seconds are recorded beside it (``cost_wall_s``). Compared: the normalised hypervolume of the
final front *at the top rung* (multi-fidelity: only candidates that reached it), mean +- std
over seeds; and where multi-fidelity's CPU went (per rung, re-training of promoted candidates
from scratch, candidates that never reached the top).

    nice -n 10 python benchmarks/bench_fidelity.py --dataset digits --seeds 3
    nice -n 10 python benchmarks/bench_fidelity.py --dataset fashion-mnist --subset 2000 \
        --size 7 --sf-budget 10 --seeds 3

    nice -n 5 python benchmarks/bench_fidelity.py --dataset cifar10 --data-root ../shared/data \
        --subset 3000 --size 16 --sf-budget 10 --rungs 3,9 --seeds 3 --acc-refs 0.3,0.4

``--subset N``: a class-balanced N-image subset of the training split (``bench_proxy``'s
``subset_npz``), for CPU-sized runs of a large dataset; ``--size S`` average-pools its images
to S x S (crop padding 1 below 14 px). CIFAR-10 keeps its colour: ``bench_cifar``'s subset
(N train, N/3 validation and N/3 test images, the same files as ``bench_cifar.py``).

``headroom`` (per seed, in the summary): the hypervolume of the union of every top-rung net of
both runs over single fidelity's -- how much better a front the two runs' own top-rung nets
allow; multi-fidelity / single fidelity cannot much exceed it when, as here, both runs draw the
same first architectures.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

# further accuracy references for the hypervolume (digits' accuracies crowd near 1, where the
# default box -- accuracy 0..1 -- leaves little room between fronts)
ACC_REFS = [0.8, 0.9]  # --acc-refs replaces them (e.g. 0.6,0.7 where accuracies end near 0.75)


def _evaluations(db: Path, multi: bool) -> list:
    from archlore.evaluator.records import Evaluation

    con = sqlite3.connect(db)
    try:
        q = ("SELECT cid, rung, evaluation FROM rungs" if multi else
             "SELECT id, 0, evaluation FROM candidates WHERE evaluation IS NOT NULL")
        rows = con.execute(q).fetchall()
    finally:
        con.close()
    return [(cid, rung, Evaluation.model_validate_json(js)) for cid, rung, js in rows]


def _cpu(ev) -> float:
    """Kernel CPU-seconds of the worker (wall stage + start-up seconds where not recorded)."""
    cpu = ev.metrics.get("worker_cpu_s")
    return float(cpu) if cpu is not None else _wall(ev)


def _wall(ev) -> float:
    return sum(t.seconds for t in ev.timings) + (ev.startup_seconds or 0.0)


def cost_of(db: Path, multi: bool, wall: bool = False) -> float:
    """CPU-seconds spent so far (all evaluations, every rung); ``wall``: stage seconds."""
    return sum((_wall if wall else _cpu)(ev) for _, _, ev in _evaluations(db, multi))


def spending(db: Path, n_rungs: int) -> dict:
    """Where multi-fidelity's CPU went: per rung; on lower rungs of candidates that were
    promoted (re-training from scratch: the evaluator returns no weights to continue from);
    on candidates that never reached the top rung."""
    evs = _evaluations(db, True)
    total = sum(_cpu(ev) for _, _, ev in evs) or 1.0
    top: dict[int, int] = {}
    for cid, rung, _ in evs:
        top[cid] = max(top.get(cid, 0), rung)
    per = [sum(_cpu(ev) for _, r, ev in evs if r == k) / total for k in range(n_rungs)]
    retrain = sum(_cpu(ev) for cid, r, ev in evs if r < top[cid]) / total
    dead_end = sum(_cpu(ev) for cid, r, ev in evs if top[cid] < n_rungs - 1) / total
    epochs = sum(float(ev.metrics.get("fidelity_epochs", 0)) for _, _, ev in evs)
    return {"share_per_rung": per, "share_retraining_promoted": retrain,
            "share_never_reached_top": dead_end, "epochs_trained": epochs}


def top_rung_hv(run_dir: Path, acc_ref: float | None = None) -> tuple[float, int]:
    """Hypervolume (and size) of the front among candidates scored at the top rung, from the
    run store alone; ``acc_ref`` replaces the accuracy reference (the saved MACs one is kept)."""
    return front_hv(run_dir, top_rung_nets(run_dir), acc_ref)


def front_hv(box_dir: Path, nets: list, acc_ref: float | None = None) -> tuple[float, int]:
    """Hypervolume (and size) of the front of ``nets`` in the reference box of the run in
    ``box_dir`` (``acc_ref`` replaces its accuracy reference)."""
    from archlore.search.front import FrontTracker
    from archlore.search.objectives import get_objectives
    from archlore.search.store import RunStore

    with RunStore(box_dir, create=False) as st:
        objs = get_objectives(st.get_meta("objectives"))
        refs = dict(st.get_meta("hv_refs"))
    if acc_ref is not None:
        refs["val_acc"] = acc_ref
    tracker = FrontTracker(objs, [refs.get(o.name) for o in objs])
    for c in nets:
        tracker.add_candidate(c)
    return tracker.hypervolume, len(tracker.ids)


def top_rung_nets(run_dir: Path) -> list:
    """The valid candidates of a run scored at the ladder's top rung, each carrying that rung's
    own evaluation (a multi-fidelity run stopped by the cost cap may have none there); a
    single-fidelity run: every valid candidate."""
    from archlore.search.store import RunStore

    with RunStore(run_dir, create=False) as st:
        fid = st.get_meta("fidelity")
        rungs = st.rungs()
        cands = st.candidates()
    if not fid:
        return [c for c in cands if c.valid]
    top = len(fid["rungs"]) - 1
    return [c.model_copy(update={"evaluation": rungs[c.id][top]}) for c in cands
            if top in rungs.get(c.id, {}) and rungs[c.id][top].ok]


def headroom(single_dir: Path, multi_dir: Path) -> float:
    """Hypervolume of the union of both runs' top-rung nets / single fidelity's (single's
    reference box)."""
    single_nets = top_rung_nets(single_dir)
    single = front_hv(single_dir, single_nets)[0]
    both = front_hv(single_dir, single_nets + top_rung_nets(multi_dir))[0]
    return both / single if single else float("nan")


def stored_single(root: Path, seed: int) -> dict:
    """The single-fidelity row of ``seed`` from an earlier call's runs in ``root`` (waits
    while that run is still going): single fidelity does not depend on the ladder."""
    from archlore.search.store import RunStore

    d = root / f"single-{seed}"
    while True:
        if (d / "run.db").exists():
            with RunStore(d, create=False) as st:
                if st.get_meta("status") == "finished":
                    break
        time.sleep(10)
    hv, n = top_rung_hv(d)
    row = {"mode": "single", "seed": seed, "status": "finished", "from": str(d), "hv_top": hv,
           "front": n, "cost_s": cost_of(d / "run.db", False),
           "cost_wall_s": cost_of(d / "run.db", False, wall=True), "wall_s": 0.0}
    for ref in ACC_REFS:
        row[f"hv_top_acc{ref:g}"] = top_rung_hv(d, ref)[0]
    return row


def mf_candidates(n_single: int, rungs: list[float], eta: int) -> int:
    """Rung-0 candidates whose ASHA ladder trains as many epochs as ``n_single`` candidates
    at the top rung: a rung-0 candidate costs ``sum_r rungs[r] / eta**r`` epochs on average
    (every rung retrained from scratch)."""
    per = sum(e / eta ** r for r, e in enumerate(rungs))
    return max(1, round(n_single * rungs[-1] / per))


def one(mode: str, seed: int, args: argparse.Namespace, root: Path,
        cap: float | None) -> dict:
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search

    rungs = [float(e) for e in args.rungs.split(",")]
    name = f"{mode}-{seed}"
    common = dict(name=name, dataset=args.data, strategy="random", seed=seed,
                  workers=args.workers, eval_timeout_s=args.timeout,
                  proxy_check={"candidates": 0},
                  recipe={"epochs": rungs[-1]})
    if mode == "single":
        cfg = SearchConfig(budget=args.sf_budget, **common)
    else:
        n0 = args.mf_budget or mf_candidates(args.sf_budget, rungs, args.eta)
        cfg = SearchConfig(budget=n0, fidelity={"rungs": rungs, "reduction": args.eta},
                           **common)
    db = root / name / "run.db"
    last = [0.0]

    def progress(snap: dict) -> None:
        if cap is None or time.monotonic() - last[0] < 0.5:
            return
        last[0] = time.monotonic()
        if cost_of(db, mode == "multi") >= cap:
            raise KeyboardInterrupt  # budget spent: stop, keep what was told

    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    res = run_search(cfg, root, progress=progress, write_outputs=False)
    wall = time.monotonic() - t0
    cost = cost_of(db, mode == "multi")
    out = {"mode": mode, "seed": seed, "status": res.status, "wall_s": wall, "cost_s": cost,
           "cost_wall_s": cost_of(db, mode == "multi", wall=True),
           "load": [load0, os.getloadavg()[0]], "budget": cfg.budget,
           "candidates": res.counts.get("evaluated"), "valid": res.counts.get("valid")}
    if mode == "multi":
        out |= spending(db, len(rungs))
    if mode == "single":
        out["hv_top"] = res.hypervolume
        out["front"] = len(res.front)
    else:
        fid = res.fidelity or {}
        out["hv_top"] = fid.get("top_rung_hypervolume", 0.0)
        out["hv_mixed"] = res.hypervolume  # front over each candidate's highest rung
        out["rung_counts"] = fid.get("counts")
        out["front"] = len(fid.get("top_rung_front", []))
    for ref in ACC_REFS:
        out[f"hv_top_acc{ref:g}"] = top_rung_hv(root / name, ref)[0]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rungs", default="1,3,9")
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--sf-budget", type=int, default=12)
    ap.add_argument("--mf-budget", type=int, default=None,
                    help="Multi-fidelity rung-0 candidates (default: same epochs as single).")
    ap.add_argument("--subset", type=int, default=None,
                    help="Class-balanced N-image training subset (npz), as bench_proxy.")
    ap.add_argument("--size", type=int, default=None,
                    help="With --subset: average-pool the images down to SIZE x SIZE.")
    ap.add_argument("--data-root", default=None,
                    help="Where the dataset's files are (CIFAR-10: ../shared/data).")
    ap.add_argument("--timeout", type=float, default=3600,
                    help="Wall-clock seconds per evaluation (a loaded machine needs many).")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-fidelity.json"))
    ap.add_argument("--acc-refs", default=None,
                    help="Accuracy references of the extra hypervolumes (default 0.8,0.9).")
    ap.add_argument("--root", type=Path, default=None, help="Directory for the runs.")
    ap.add_argument("--single-from", type=Path, default=None,
                    help="Reuse the single-fidelity runs of an earlier call's --root "
                         "(same dataset, seeds, --sf-budget and top rung).")
    ap.add_argument("--analyse", type=Path, default=None,
                    help="Recompute the figures from the runs of an earlier call in DIR.")
    args = ap.parse_args()
    if args.acc_refs:
        ACC_REFS[:] = [float(x) for x in args.acc_refs.split(",")]
    args.data = args.dataset
    sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmarks' subset writers
    if args.analyse is not None:
        pass  # the runs are stored: no data needed
    elif args.subset and args.dataset == "cifar10":
        from bench_cifar import write_subset

        npz = Path(f"/tmp/archlore-cifar10-{args.subset}-{args.size or 32}.npz")
        if not npz.exists():  # written under a temporary name, then renamed: never partial
            part = npz.with_name(f"{npz.stem}.{os.getpid()}.part.npz")
            write_subset(args.data_root or "../shared/data", part, args.subset,
                         args.subset // 3, args.subset // 3, args.size or 32)
            os.replace(part, npz)
        args.data = f"npz:{npz}"
    elif args.subset:
        from bench_proxy import subset_npz

        args.data = subset_npz(
            args.dataset, args.subset,
            Path(f"/tmp/archlore-{args.dataset}-{args.subset}-{args.size or 'full'}.npz"),
            size=args.size, pad=2 if (args.size or 28) >= 14 else 1)
    rows = []
    if args.analyse is not None:
        for seed in range(args.seeds):
            for mode in ("single", "multi"):
                d = (args.single_from if mode == "single" and args.single_from
                     else args.analyse) / f"{mode}-{seed}"
                hv, n = top_rung_hv(d)
                row = {"mode": mode, "seed": seed, "hv_top": hv, "front": n,
                       "cost_s": cost_of(d / "run.db", mode == "multi"),
                       "cost_wall_s": cost_of(d / "run.db", mode == "multi", wall=True),
                       "wall_s": 0.0}
                if mode == "multi":
                    row |= spending(d / "run.db", len(args.rungs.split(",")))
                for ref in ACC_REFS:
                    row[f"hv_top_acc{ref:g}"] = top_rung_hv(d, ref)[0]
                rows.append(row)
    else:
        root = args.root or Path(tempfile.mkdtemp(prefix="archlore-bench-fid-"))
        root.mkdir(parents=True, exist_ok=True)
        print(f"runs in {root}", flush=True)
        for seed in range(args.seeds):
            if args.single_from is not None:  # the same single-fidelity runs, another ladder
                sf = stored_single(args.single_from, seed)
            else:
                sf = one("single", seed, args, root, None)
            mf = one("multi", seed, args, root, sf["cost_s"])
            rows += [sf, mf]

    run_root = args.analyse if args.analyse is not None else root
    for s_row, m_row in zip(rows[::2], rows[1::2], strict=True):
        sdir = (args.single_from or run_root) / f"single-{s_row['seed']}"
        m_row["headroom"] = headroom(sdir, run_root / f"multi-{m_row['seed']}")

    def ms(v: list[float]) -> tuple[float, float]:
        v = [x for x in v if x == x]  # a ratio of two zero hypervolumes is NaN: left out
        if not v:
            return float("nan"), float("nan")
        return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

    def stat(mode: str, key: str) -> tuple[float, float]:
        return ms([r[key] for r in rows if r["mode"] == mode])

    keys = ["hv_top"] + [f"hv_top_acc{r:g}" for r in ACC_REFS]
    summary: dict = {m: {k: stat(m, k) for k in keys + ["cost_s", "wall_s"]}
                     for m in ("single", "multi")}
    cr = [m["cost_s"] / s["cost_s"] for s, m in zip(rows[::2], rows[1::2], strict=True)
          if s["cost_s"]]
    summary["ratio_cost_s"] = ms(cr)
    summary["headroom"] = ms([m["headroom"] for m in rows[1::2]])
    for k in keys:
        summary[f"ratio_{k}"] = ms([m[k] / s[k] if s[k] else float("nan")
                                    for s, m in zip(rows[::2], rows[1::2], strict=True)])
    out = {"args": vars(args) | {"out": str(args.out), "analyse": str(args.analyse)},
           "rows": rows, "summary": summary,
           "load": os.getloadavg()}
    args.out.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
