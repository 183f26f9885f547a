"""SWNAS benchmark: DARTS-V1 argmax vs synergistic vs synergistic + rule-based advisor step
(and the one-shot DARTS-PT selection as a second baseline) on a reduced CPU supernet.

Per seed one supernet search per variant runs: ``plain`` without advisor (argmax, DARTS-PT
and synergistic cells are all derived from that same supernet), ``rules`` with the rule-based
advisor every ``--advise-every`` epochs, and ``llm`` with a real LLM as the advisor (the
agent's LLM mutator answering typed ``swnas`` requests; ``--llm-base-url``, any
OpenAI-compatible server). Derived cells are looked up in the NAS-Bench-201 table *after* the
search, for reporting only (200-epoch CIFAR-10 test accuracy); nothing in the search reads it.

    nice -n 10 python benchmarks/bench_swnas.py --data-root ../shared/data \\
        --table ../shared/data/nb201.csv --seeds 0 1 2 --out /tmp/bench_swnas.json
    # with a local LLM advisor (../shared/llm/start_server.sh 0.5b 8731):
    python benchmarks/bench_swnas.py --variants llm --llm-base-url http://127.0.0.1:8731/v1 \\
        --llm-model qwen2.5-coder-0.5b
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
from archlore.search.swnas.darts import DartsSearch, load_search_data
from archlore.search.swnas.messages import SearchSettings
from archlore.search.swnas.strategy import _mutator_advisor


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rederive(search: DartsSearch, saved: Path):
    """The stored search (``<variant>-<seed>.json`` + ``.pt``) with its cells re-derived by
    the current discretisation code from the stored supernet, mask and preferences."""
    import numpy as np
    import torch
    from archlore.search.swnas import discretize
    from archlore.search.swnas.messages import SearchResult, apply_edits

    res = SearchResult.model_validate_json(saved.with_suffix(".json").read_text())
    state = torch.load(saved)
    search.net.load_state_dict(state["net"])
    search.mask = state["mask"]
    search.prefer = np.ones_like(search.prefer)
    for step in res.edits:  # the preference factors the advisor's accepted edits built
        from archlore.search.swnas.messages import AdvisorAnswer
        edits = AdvisorAnswer.model_validate({"edits": step["accepted"]}).edits
        _, search.prefer = apply_edits(edits, search.mask, search.prefer)
    t = time.perf_counter()
    cells = discretize.derive_all(res.final, res.settings.lam, res.settings.tau,
                                  search.prefer.tolist())
    torch.set_num_threads(max(1, search.s.threads))
    first, trace = search.progressive()
    rest = [c for c in cells["synergistic"] if c != first]
    cells["progressive"] = [first] + rest[:len(cells["synergistic"]) - 1]
    return res.model_copy(update={"cells": cells, "progressive_trace": trace,
                                  "wall_s": res.wall_s + time.perf_counter() - t})


def _llm_mutator(args: argparse.Namespace):
    """The agent's LLM mutator on a real OpenAI-compatible server (advisor of the llm variant)."""
    from archlore.agent.llm.openai_backend import OpenAIModel
    from archlore.agent.llm_mutator import LLMMutator

    model = OpenAIModel(base_url=args.llm_base_url, model=args.llm_model, api_key="none",
                        timeout_s=args.llm_timeout, max_retries=2, backoff_initial_s=0.5)
    return LLMMutator(model, mode="structured", max_repair_turns=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=os.environ.get("ARCHLORE_DATA", "../shared/data"))
    ap.add_argument("--table", default="../shared/data/nb201.csv")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--n", type=int, default=500, help="images per DARTS split (train, val)")
    ap.add_argument("--n-signal", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--advise-every", type=int, default=5)
    ap.add_argument("--a-lr", type=float, default=1e-2, help="alpha's Adam step size")
    ap.add_argument("--variants", nargs="+", default=["plain", "rules"],
                    choices=["plain", "rules", "llm"],
                    help="plain: no advisor; rules: the rule-based advisor; llm: an LLM "
                         "advisor (needs --llm-base-url)")
    ap.add_argument("--llm-base-url", default=None, help="OpenAI-compatible server")
    ap.add_argument("--llm-model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--llm-timeout", type=float, default=600.0)
    ap.add_argument("--from-saved", default=None,
                    help="re-derive the cells from supernets kept by --save-dir (no training): "
                         "same training, current discretisation code; wall_s is the stored "
                         "search time plus the new derivation's time")
    ap.add_argument("--save-dir", default=None,
                    help="keep each search's result JSON and supernet state here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="/tmp/bench_swnas.json")
    args = ap.parse_args()

    if "llm" in args.variants and not args.llm_base_url:
        ap.error("--variants llm needs --llm-base-url")
    table = NB201Table(args.table, "cifar10")
    mutator = _llm_mutator(args) if "llm" in args.variants else None
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
        runs = {"plain": (plain, None), "rules": (guided, advise)}
        if mutator is not None:
            runs["llm"] = (guided.model_copy(update={"advisor": f"llm:{args.llm_model}"}),
                           _mutator_advisor(mutator, seed))
        for variant in args.variants:
            settings, advisor = runs[variant]
            search = DartsSearch(settings, data, advisor)
            saved = Path(args.from_saved or "") / f"{variant}-{seed}.pt"
            if args.from_saved and saved.is_file():
                res = rederive(search, saved)
            else:
                res = search.run()
            if args.save_dir and not args.from_saved:
                import torch
                d = Path(args.save_dir)
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{variant}-{seed}.json").write_text(res.model_dump_json())
                torch.save({"net": search.net.state_dict(), "mask": search.mask},
                           d / f"{variant}-{seed}.pt")
            methods = [m for m in ("argmax", "pt", "synergistic", "progressive")
                       if m in res.cells]
            for m in methods:
                arch = res.cells[m][0]
                name = m if advisor is None else f"{m}+{variant}"
                e = table[arch]
                rows.append({"seed": seed, "method": name, "arch": arch,
                             "test_acc": e.test_acc, "valid_acc": e.valid_acc,
                             "wall_s": res.wall_s, "supernet_val_acc": res.supernet_val_acc,
                             "edits": sum(len(x["accepted"]) for x in res.edits),
                             "rejected": sum(len(x.get("rejected", [])) for x in res.edits),
                             "load": _load()})
                print(f"seed {seed} {name:18} {e.test_acc:6.2f}  {arch}  "
                      f"search {res.wall_s:.0f}s  edits {rows[-1]['edits']} accepted / "
                      f"{rows[-1]['rejected']} rejected  load {_load()}", flush=True)
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
    finish(mutator, t0, args, rows)


def finish(mutator, t0: float, args: argparse.Namespace, rows: list[dict]) -> None:
    """The LLM advisor's token use, the total time and load, and the rows as JSON."""
    if mutator is not None:
        u = mutator.model.usage
        print(f"LLM advisor: {u.calls} calls, {u.prompt_tokens} prompt + "
              f"{u.completion_tokens} completion tokens")
    print(f"\ntotal {time.perf_counter() - t0:.0f}s; load avg at end {_load()}")
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
