"""SWNAS in the open space: DARTS-V1 argmax vs one-shot DARTS-PT vs synergistic discretisation
of block types per stage, without an advisor, with the rule-based advisor (which may add a
node) and with a real LLM advisor; every derived net trained by the evaluator and compared
with the base net it started from.

Per seed one supernet search per variant (``plain``, ``rules``, ``llm``); the three
discretisations come from the same supernet. Every derived spec (and the base) is rendered
and trained by archlore's evaluator with one recipe (``--epochs``, seed = search seed);
selection inside the search reads only the supernet's own validation split (training
images); the evaluator reports the dataset's validation and test accuracy.

    python benchmarks/bench_swnas_open.py --dataset digits --seeds 0 1 2
    # with a local LLM advisor (../shared/llm/start_server.sh 0.5b 8731):
    python benchmarks/bench_swnas_open.py --variants llm --llm-base-url http://127.0.0.1:8731/v1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from archlore.evaluator import EvalConfig, evaluate
from archlore.search.protocol import Constraints
from archlore.search.spaces.open import OpenSpace
from archlore.search.spaces.open_spec import ArchSpec
from archlore.search.swnas.advisor import advise
from archlore.search.swnas.darts import load_search_data, run_search
from archlore.search.swnas.messages import SearchSettings
from archlore.search.swnas.strategy import _mutator_advisor


def _blocks(spec: ArchSpec) -> str:
    return "/".join(s.block for s in spec.stages)


def main() -> None:
    from bench_swnas import _llm_mutator, _load, finish  # as the NB201 benchmark

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits",
                    help="any archlore dataset, or cifar10-subset: a class-balanced subset of "
                         "../shared/data's CIFAR-10 (--subset) at --image-size, as bench_cifar")
    ap.add_argument("--subset", type=int, nargs=3, default=[3000, 1000, 1000],
                    metavar=("TRAIN", "VAL", "TEST"))
    ap.add_argument("--data-root", default=os.environ.get("ARCHLORE_DATA", "../shared/data"))
    ap.add_argument("--image-size", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--search-epochs", type=int, default=8)
    ap.add_argument("--n", type=int, default=600, help="images per DARTS split (train, val)")
    ap.add_argument("--n-signal", type=int, default=256)
    ap.add_argument("--advise-every", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=4.0, help="evaluator epochs per net")
    ap.add_argument("--variants", nargs="+", default=["plain", "rules"],
                    choices=["plain", "rules", "rules-noadd", "llm"],
                    help="rules-noadd: the rule-based advisor with AddNode disabled (ablation)")
    ap.add_argument("--llm-base-url", default=None)
    ap.add_argument("--llm-model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--llm-timeout", type=float, default=600.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/tmp/bench_swnas_open.json")
    args = ap.parse_args()
    if "llm" in args.variants and not args.llm_base_url:
        ap.error("--variants llm needs --llm-base-url")

    if args.dataset == "cifar10-subset":
        import tempfile

        from bench_cifar import write_subset
        work = Path(tempfile.mkdtemp(prefix="swnas-open-"))
        npz = write_subset(args.data_root, work / "cifar10-subset.npz", *args.subset,
                           size=args.image_size)
        args.dataset, args.data_root = f"npz:{npz}", None
    constraints = Constraints(dataset=args.dataset, image_size=args.image_size)
    base_spec = OpenSpace().seeds(constraints)[1]  # the residual seed: basic blocks
    mutator = _llm_mutator(args) if "llm" in args.variants else None
    base = SearchSettings(space="open", base=base_spec.to_json(), dataset=args.dataset,
                          data_root=args.data_root, epochs=args.search_epochs, n_train=args.n,
                          n_val=args.n, n_signal=args.n_signal, image_size=args.image_size,
                          threads=args.threads)
    t0 = time.perf_counter()
    data = load_search_data(base)
    print(f"base net: {_blocks(base_spec)}; settings "
          f"{base.model_dump(exclude={'data_root', 'base'})}; load {_load()}", flush=True)
    cache: dict[str, dict] = {}

    def score(spec: ArchSpec, seed: int) -> dict:
        key = f"{spec.key()}|{seed}"
        if key not in cache:
            ev = evaluate(OpenSpace().render(spec), EvalConfig(
                dataset=args.dataset, data_root=args.data_root, epochs=args.epochs, seed=seed,
                measure_latency=False, cpu_threads=args.threads))
            cache[key] = {"ok": ev.ok, "val_acc": ev.val_acc, "test_acc": ev.test_acc,
                          "macs": ev.macs, "params": ev.params, "reason": ev.reason}
        return cache[key]

    rows = []
    for seed in args.seeds:
        ref = score(base_spec, seed)
        rows.append({"seed": seed, "method": "base (residual seed)", "blocks": _blocks(base_spec),
                     **ref, "wall_s": 0.0, "edits": 0, "added": 0, "load": _load()})
        print(f"seed {seed} base               val {100 * (ref['val_acc'] or 0):6.2f} test "
              f"{100 * (ref['test_acc'] or 0):6.2f} {(ref['macs'] or 0) / 1e6:6.3f} MMACs  "
              f"{_blocks(base_spec)}", flush=True)
        plain = base.model_copy(update={"seed": seed})
        guided = plain.model_copy(update={"advisor": "rules", "advise_every": args.advise_every})
        runs = {"plain": (plain, None), "rules": (guided, advise),
                "rules-noadd": (guided.model_copy(update={"max_added": 0}), advise)}
        if mutator is not None:
            runs["llm"] = (guided.model_copy(update={"advisor": f"llm:{args.llm_model}"}),
                           _mutator_advisor(mutator, seed))
        for variant in args.variants:
            settings, advisor = runs[variant]
            res = run_search(settings, data, advisor)
            accepted = [e for step in res.edits for e in step["accepted"]]
            added = sum(e["kind"] == "add_node" for e in accepted)
            for method in ("argmax", "pt", "synergistic"):
                spec = ArchSpec.from_json(res.cells[method][0])
                r = score(spec, seed)
                name = method if advisor is None else f"{method}+{variant}"
                rows.append({"seed": seed, "method": name, "blocks": _blocks(spec), **r,
                             "wall_s": res.wall_s, "edits": len(accepted), "added": added,
                             "rejected": sum(len(s.get("rejected", [])) for s in res.edits),
                             "edit_log": res.edits if method == "argmax" else [],
                             "load": _load()})
                print(f"seed {seed} {name:18} val {100 * (r['val_acc'] or 0):6.2f} test "
                      f"{100 * (r['test_acc'] or 0):6.2f} {(r['macs'] or 0) / 1e6:6.3f} MMACs  "
                      f"{_blocks(spec):40} search {res.wall_s:.0f}s edits {len(accepted)} "
                      f"(add_node {added}) load {_load()}", flush=True)
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    print(f"\n| method | val % | test % | MMACs | search s | edits (add_node) |  "
          f"({args.dataset}, {len(args.seeds)} seeds, mean ± sd)")
    print("|---|---|---|---|---|---|")

    def ms(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.2f}"

    for m, rs in by.items():
        ok = [r for r in rs if r["ok"]]
        print(f"| {m} | {ms([100 * r['val_acc'] for r in ok])} | "
              f"{ms([100 * r['test_acc'] for r in ok])} | "
              f"{statistics.mean(r['macs'] for r in ok) / 1e6:.3f} | "
              f"{statistics.mean(r['wall_s'] for r in rs):.0f} | "
              f"{statistics.mean(r['edits'] for r in rs):.1f} "
              f"({statistics.mean(r['added'] for r in rs):.1f}) |")
    finish(mutator, t0, args, rows)


if __name__ == "__main__":
    main()
