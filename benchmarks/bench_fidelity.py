"""Single fidelity vs multi-fidelity (ASHA) at the same evaluation cost.

Random search on the open space, objectives val_acc up / MACs down. Single fidelity trains
``--sf-budget`` candidates for the top rung's epochs; multi-fidelity gets rungs
``--rungs`` (reduction ``--eta``) and an open candidate budget, and is stopped once its
evaluations have cost as many worker-seconds as the single-fidelity run of the same seed
(cost = the sum over every evaluation, all rungs, of its stage seconds plus its worker start-up
seconds; each worker is single-threaded, so these are CPU-seconds of the workers). Compared: the normalised hypervolume of the final front *at the top
rung* (multi-fidelity: only candidates that reached it), mean +- std over seeds.

    nice -n 10 python benchmarks/bench_fidelity.py --dataset digits --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

# further accuracy references for the hypervolume (digits' accuracies crowd near 1, where the
# default box -- accuracy 0..1 -- leaves little room between fronts)
ACC_REFS = (0.8, 0.9)


def cost_of(db: Path, multi: bool) -> float:
    """Worker-seconds spent so far (all evaluations, every rung)."""
    from archlore.evaluator.records import Evaluation

    con = sqlite3.connect(db)
    try:
        q = ("SELECT evaluation FROM rungs" if multi else
             "SELECT evaluation FROM candidates WHERE evaluation IS NOT NULL")
        rows = con.execute(q).fetchall()
    finally:
        con.close()
    total = 0.0
    for (js,) in rows:
        ev = Evaluation.model_validate_json(js)
        total += sum(t.seconds for t in ev.timings) + (ev.startup_seconds or 0.0)
    return total


def top_rung_hv(run_dir: Path, acc_ref: float | None = None) -> tuple[float, int]:
    """Hypervolume (and size) of the front among candidates scored at the top rung, from the
    run store alone; ``acc_ref`` replaces the accuracy reference (the saved MACs one is kept)."""
    from archlore.search.front import FrontTracker
    from archlore.search.objectives import get_objectives
    from archlore.search.store import RunStore

    with RunStore(run_dir, create=False) as st:
        objs = get_objectives(st.get_meta("objectives"))
        refs = dict(st.get_meta("hv_refs"))
        if acc_ref is not None:
            refs["val_acc"] = acc_ref
        rungs = st.rungs()
        cands = st.candidates()
    top = max((max(r) for r in rungs.values()), default=None)
    tracker = FrontTracker(objs, [refs.get(o.name) for o in objs])
    for c in cands:
        if rungs and top not in rungs.get(c.id, {}):
            continue
        if c.valid:
            tracker.add_candidate(c)
    return tracker.hypervolume, len(tracker.ids)


def one(mode: str, seed: int, args: argparse.Namespace, root: Path,
        cap: float | None) -> dict:
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search

    rungs = [float(e) for e in args.rungs.split(",")]
    name = f"{mode}-{seed}"
    common = dict(name=name, dataset=args.dataset, strategy="random", seed=seed,
                  workers=args.workers, proxy_check={"candidates": 0},
                  recipe={"epochs": rungs[-1]})
    if mode == "single":
        cfg = SearchConfig(budget=args.sf_budget, **common)
    else:
        cfg = SearchConfig(budget=10 * args.sf_budget,
                           fidelity={"rungs": rungs, "reduction": args.eta}, **common)
    db = root / name / "run.db"
    last = [0.0]

    def progress(snap: dict) -> None:
        if cap is None or time.monotonic() - last[0] < 0.5:
            return
        last[0] = time.monotonic()
        if cost_of(db, mode == "multi") >= cap:
            raise KeyboardInterrupt  # budget spent: stop, keep what was told

    t0 = time.monotonic()
    res = run_search(cfg, root, progress=progress, write_outputs=False)
    wall = time.monotonic() - t0
    cost = cost_of(db, mode == "multi")
    out = {"mode": mode, "seed": seed, "status": res.status, "wall_s": wall, "cost_s": cost,
           "candidates": res.counts.get("candidates"), "valid": res.counts.get("valid")}
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
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-fidelity.json"))
    ap.add_argument("--analyse", type=Path, default=None,
                    help="Recompute the figures from the runs of an earlier call in DIR.")
    args = ap.parse_args()
    rows = []
    if args.analyse is not None:
        for seed in range(args.seeds):
            for mode in ("single", "multi"):
                d = args.analyse / f"{mode}-{seed}"
                hv, n = top_rung_hv(d)
                row = {"mode": mode, "seed": seed, "hv_top": hv, "front": n,
                       "cost_s": cost_of(d / "run.db", mode == "multi"), "wall_s": 0.0}
                for ref in ACC_REFS:
                    row[f"hv_top_acc{ref:g}"] = top_rung_hv(d, ref)[0]
                rows.append(row)
    else:
        root = Path(tempfile.mkdtemp(prefix="archlore-bench-fid-"))
        print(f"runs in {root}", flush=True)
        for seed in range(args.seeds):
            sf = one("single", seed, args, root, None)
            mf = one("multi", seed, args, root, sf["cost_s"])
            rows += [sf, mf]

    def stat(mode: str, key: str) -> tuple[float, float]:
        v = [r[key] for r in rows if r["mode"] == mode]
        return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

    keys = ["hv_top"] + [f"hv_top_acc{r:g}" for r in ACC_REFS]
    summary: dict = {m: {k: stat(m, k) for k in keys + ["cost_s", "wall_s"]}
                     for m in ("single", "multi")}
    for k in keys:
        ratios = [m[k] / s[k] if s[k] else float("nan")
                  for s, m in zip(rows[::2], rows[1::2], strict=True)]
        summary[f"ratio_{k}"] = (statistics.mean(ratios),
                                 statistics.stdev(ratios) if len(ratios) > 1 else 0.0)
    out = {"args": vars(args) | {"out": str(args.out)}, "rows": rows, "summary": summary,
           "load": os.getloadavg()}
    args.out.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
