"""SWNAS benchmark: DARTS-V1 argmax vs synergistic vs synergistic + rule-based advisor step
(and the one-shot DARTS-PT selection as a second baseline) on a reduced CPU supernet.

Per seed two supernet searches run: one without advisor (argmax, DARTS-PT and synergistic
cells are all derived from that same supernet) and one with the rule-based advisor every
``--advise-every`` epochs. Derived cells are looked up in the NAS-Bench-201 table *after* the
search, for reporting only (200-epoch CIFAR-10 test accuracy); nothing in the search reads it.

    nice -n 10 python benchmarks/bench_swnas.py --data-root ../shared/data \\
        --table ../shared/data/nb201.csv --seeds 0 1 2 --out /tmp/bench_swnas.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from archlore.search.spaces.nb201_table import NB201Table
from archlore.search.swnas.advisor import advise
from archlore.search.swnas.darts import load_search_data, run_search
from archlore.search.swnas.messages import SearchSettings


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=os.environ.get("ARCHLORE_DATA", "../shared/data"))
    ap.add_argument("--table", default="../shared/data/nb201.csv")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--n", type=int, default=1500, help="images per DARTS split (train, val)")
    ap.add_argument("--n-signal", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--advise-every", type=int, default=2)
    ap.add_argument("--a-lr", type=float, default=3e-3, help="alpha's Adam step size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/tmp/bench_swnas.json")
    args = ap.parse_args()

    table = NB201Table(args.table, "cifar10")
    base = SearchSettings(data_root=args.data_root, epochs=args.epochs, n_train=args.n,
                          n_val=args.n, n_signal=args.n_signal, image_size=args.image_size,
                          channels=args.channels, cells=args.cells, threads=args.threads,
                          a_lr=args.a_lr)
    t0 = time.perf_counter()
    data = load_search_data(base)
    print(f"settings: {base.model_dump(exclude={'data_root'})}")
    print(f"data: {args.n}+{args.n} CIFAR-10 training images at {args.image_size}px "
          f"({time.perf_counter() - t0:.1f}s); load avg {_load()}", flush=True)
    rows = []
    for seed in args.seeds:
        plain = base.model_copy(update={"seed": seed})
        guided = plain.model_copy(update={"advisor": "rules", "advise_every": args.advise_every})
        for settings, advisor in ((plain, None), (guided, advise)):
            res = run_search(settings, data, advisor)
            methods = (["argmax", "pt", "synergistic"] if advisor is None
                       else ["argmax", "synergistic"])
            for m in methods:
                arch = res.cells[m][0]
                name = m if advisor is None else f"{m}+rules"
                e = table[arch]
                rows.append({"seed": seed, "method": name, "arch": arch,
                             "test_acc": e.test_acc, "valid_acc": e.valid_acc,
                             "wall_s": res.wall_s, "supernet_val_acc": res.supernet_val_acc,
                             "edits": sum(len(x["accepted"]) for x in res.edits),
                             "load": _load()})
                print(f"seed {seed} {name:18} {e.test_acc:6.2f}  {arch}  "
                      f"search {res.wall_s:.0f}s  load {_load()}", flush=True)
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    print("\n| method | CIFAR-10 test (table) mean ± sd | per seed | search wall s (mean) |")
    print("|---|---|---|---|")
    for m, rs in by.items():
        accs = [r["test_acc"] for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {m} | {statistics.mean(accs):.2f} ± {sd:.2f} | "
              f"{' / '.join(f'{a:.2f}' for a in accs)} | "
              f"{statistics.mean(r['wall_s'] for r in rs):.0f} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f}s; load avg at end {_load()}")
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
