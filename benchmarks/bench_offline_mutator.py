"""Offline mutator benchmark: valid rate, time per mutation, MACs change.

Fixed pairs: every built-in corpus idea with edits x every seed parent of the open space, on
digits (1x8x8) and CIFAR-shaped (3x32x32) input; plus the structural operators (pareto grow /
shrink, refine, crossover, random, repair) from the same parents. "Valid" = the evaluator's
static policy, build and shape stages pass (run in-process on the rendered code). Time per
mutation is the mutator call alone (rendering + MACs estimates included, shape check excluded),
cold: the estimate cache is cleared before every call. MACs ratio = child / parent MACs per image.

    python benchmarks/bench_offline_mutator.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from archlore.agent.offline import OfflineMutator
from archlore.corpora import load_builtin_ideas
from archlore.evaluator.cascade import build_model, check_shape
from archlore.evaluator.policy import check_source
from archlore.search.protocol import Constraints, MutationRequest, ParentInfo
from archlore.search.spaces.open import OpenSpace, _measure_cached, measure, render


def _valid(code: str, c: Constraints) -> bool:
    if check_source(code):
        return False
    try:
        model = build_model(code, c.num_classes, c.in_channels)
        check_shape(model, (c.in_channels, c.image_size, c.image_size), c.num_classes,
                    torch.device("cpu"))
    except Exception:  # noqa: BLE001 - any failure counts as invalid
        return False
    return True


def _requests(c: Constraints, seeds, ideas):
    parents = [ParentInfo(code=render(s), arch=s.to_json()) for s in seeds]
    for idea in ideas:
        for k, p in enumerate(parents):
            yield "idea", MutationRequest(operator="idea", idea=idea, parents=[p], constraints=c, seed=k)
    for k, p in enumerate(parents):
        for s in range(5):
            yield "pareto-grow", MutationRequest(operator="pareto", instruction="grow", parents=[p],
                                                 constraints=c, seed=s)
            yield "pareto-shrink", MutationRequest(operator="pareto", instruction="shrink",
                                                   parents=[p], constraints=c, seed=s)
            yield "refine", MutationRequest(operator="refine", parents=[p], constraints=c, seed=s)
            yield "random", MutationRequest(operator="random", constraints=c, seed=10 * k + s)
            other = parents[(k + 1 + s % (len(parents) - 1)) % len(parents)]
            yield "crossover", MutationRequest(operator="crossover", parents=[p, other],
                                               constraints=c, seed=s)
        capped = c.model_copy(update={"max_mmacs": measure(seeds[k], c)[0] / 2e6})
        yield "repair", MutationRequest(operator="repair", parents=[p], constraints=capped,
                                        error="cost: MACs exceed max_mmacs")


def main() -> None:
    torch.set_num_threads(1)
    mutator, space = OfflineMutator(), OpenSpace()
    ideas = [i for i in load_builtin_ideas() if i.edits]
    rows = []
    for label, c in (("digits 1x8x8", Constraints()),
                     ("cifar 3x32x32", Constraints(dataset="cifar10", in_channels=3, image_size=32))):
        seeds = space.seeds(c)
        stats: dict[str, dict] = {}
        for op, req in _requests(c, seeds, ideas):
            st = stats.setdefault(op, {"n": 0, "children": 0, "noop": 0, "errors": 0, "valid": 0,
                                       "ms": [], "ratio": []})
            st["n"] += 1
            _measure_cached.cache_clear()  # cold: every estimate (parent's too) is recomputed
            t0 = time.perf_counter()
            res = mutator.mutate(req)
            st["ms"].append(1e3 * (time.perf_counter() - t0))
            if res.code is None:
                st["noop" if (res.error or "").startswith("no-op:") else "errors"] += 1
                continue
            st["children"] += 1
            st["valid"] += _valid(res.code, c)
            if req.parents:
                parent_macs = measure(space_spec(req.parents[0]), c)[0]
                child_macs = measure(space_spec(ParentInfo(arch=res.arch)), c)[0]
                st["ratio"].append(child_macs / parent_macs)
        rows.append((label, stats))

    print(f"offline mutator: {len(ideas)} applicable corpus ideas x 4 seed parents per input shape;"
          " torch threads = 1")
    head = (f"{'input':<14} {'operator':<14} {'requests':>8} {'children':>8} {'no-op':>6} "
            f"{'errors':>6} {'valid %':>8} {'ms/mut mean':>11} {'p95':>7} "
            f"{'MACs ratio p10/median/p90':>27} {'up/down/same':>13}")
    print(head)
    print("-" * len(head))
    for label, stats in rows:
        for op, st in stats.items():
            ms = st["ms"]
            r = st["ratio"]
            ratio = "-" if not r else "{:.2f} / {:.2f} / {:.2f}".format(*np.percentile(r, [10, 50, 90]))
            updown = "-" if not r else (f"{sum(x > 1.001 for x in r)}/{sum(x < 0.999 for x in r)}/"
                                        f"{sum(abs(x - 1) <= 0.001 for x in r)}")
            valid = 100.0 * st["valid"] / st["children"] if st["children"] else float("nan")
            print(f"{label:<14} {op:<14} {st['n']:>8} {st['children']:>8} {st['noop']:>6} "
                  f"{st['errors']:>6} {valid:>8.1f} {statistics.mean(ms):>11.1f} "
                  f"{np.percentile(ms, 95):>7.1f} {ratio:>27} {updown:>13}")


def space_spec(parent: ParentInfo):
    from archlore.agent.offline import parent_spec

    return parent_spec(parent)


if __name__ == "__main__":
    main()
