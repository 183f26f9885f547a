"""Run assembly: a ``SearchConfig`` -> space, strategy, backend, objectives, engine -> outputs.

Everything is looked up in the registries (``list_spaces()``, ``list_strategies()``,
``list_backends()``, ``list_objectives()``), so ``archlore search``, ``archlore ask`` and the
NAS-Bench-201 harness (``search.bench``) all drive the same ``SearchEngine``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from archlore.search.backends.base import EvaluationBackend
from archlore.search.config import SearchConfig
from archlore.search.engine import Progress, RunResult, SearchEngine
from archlore.search.novelty import NoveltyFilter
from archlore.search.objectives import Objective, get_objectives
from archlore.search.protocol import Constraints, Mutator
from archlore.search.registry import BACKENDS, SPACES, STRATEGIES
from archlore.search.store import RunStore
from archlore.search.strategies.base import StrategyContext


class RunExists(RuntimeError):
    """A run of that name already has candidates; resume it or pick another name."""


def constraints_of(config: SearchConfig) -> Constraints:
    from archlore.evaluator.data import dataset_info

    in_ch, classes, size = dataset_info(config.dataset, config.data_root)
    return Constraints(dataset=config.dataset, in_channels=in_ch, num_classes=classes,
                       image_size=size, max_mmacs=config.max_mflops, max_params=config.max_params)


def hv_references(config: SearchConfig, objectives: list[Objective], space: Any,
                  constraints: Constraints, saved: dict[str, float] | None = None
                  ) -> list[float | None]:
    """Hypervolume reference per objective (raw units): given, the run's cap, what the run
    saved, twice the largest seed's estimate (MACs, params), or None (fixed from the first
    valid candidate)."""
    saved = saved or {}
    seed_desc: list[dict[str, Any]] | None = None
    refs: list[float | None] = []
    for o in objectives:
        ref: float | None = config.hv_ref.get(o.name)
        if ref is None and o.name == "val_acc":
            ref = config.hv_ref_acc
        if ref is None and o.name == "macs":
            mm = config.hv_ref_mflops or config.max_mflops
            ref = mm * 1e6 if mm is not None else None
        if ref is None and o.name == "params" and config.max_params is not None:
            ref = float(config.max_params)
        ref = saved.get(o.name) if ref is None else ref
        if ref is None and o.name in ("macs", "params"):
            if seed_desc is None:
                seed_desc = [space.describe(g, constraints) for g in space.seeds(constraints)]
            key = "macs" if o.name == "macs" else "params"
            vals = [d[key] for d in seed_desc if d.get(key)]
            ref = 2.0 * max(vals) if vals else None
        refs.append(None if ref is None else float(ref))
    return refs


def make_backend(config: SearchConfig, space: Any) -> EvaluationBackend:
    name = config.evaluation.backend or space.default_backend
    return BACKENDS.get(name)(config, space)


def fidelity_plan(config: SearchConfig, backend: EvaluationBackend, space: Any,
                  objectives: list[Objective]) -> Any:
    """The multi-fidelity plan of ``config.fidelity`` (None: single fidelity). The backend
    must be able to score code with another config (``search.proxy.submitter``)."""
    if not config.fidelity.rungs:
        return None
    from archlore.search.fidelity import FidelityPlan, Ladder
    from archlore.search.proxy import submitter

    submit = submitter(backend)
    if submit is None or not space.needs_code:
        raise ValueError(f"multi-fidelity needs a backend that trains candidate code with a "
                         f"chosen number of epochs (pool, ray); {backend.name!r} cannot")
    base = getattr(backend, "eval_config", None) or config.eval_config()
    return FidelityPlan(Ladder(list(config.fidelity.rungs), config.fidelity.reduction,
                               objectives), base, submit)


def record_proxy_check(config: SearchConfig, store: RunStore, backend: EvaluationBackend,
                       space: Any, objectives: list[Objective]) -> dict[str, Any] | None:
    """The cheap proxy-reliability check of a finished, proxy-scored run (meta
    ``proxy_check``): a few candidates re-scored with a second seed (``search.proxy``)."""
    n = config.proxy_check.candidates
    if not n or not space.needs_code or store.get_meta("proxy_check") is not None:
        return None
    from archlore.search.proxy import in_search_check, submitter

    submit = submitter(backend)
    if submit is None:
        return None
    metric = "val_acc" if "val_acc" in config.objectives else objectives[0].name
    cands = store.candidates()
    if config.fidelity.rungs:  # the proxy is rung 0: check it there, never across rungs
        rungs = store.rungs()
        cands = [c.model_copy(update={"evaluation": rungs[c.id][0]}) for c in cands
                 if 0 in rungs.get(c.id, {})]
    base = getattr(backend, "eval_config", None) or config.eval_config()
    if config.fidelity.rungs:
        from archlore.search.fidelity import rung_config

        base = rung_config(base, list(config.fidelity.rungs), 0)
    try:
        rep = in_search_check(cands, base, submit, n=n,
                              seed_offset=config.proxy_check.seed_offset, metric=metric,
                              dataset=config.dataset)
    except KeyboardInterrupt:  # the search itself is done: keep it, skip the check
        rep, why = None, "interrupted"
    except Exception as exc:  # noqa: BLE001 - a backend fault must not fail a finished run
        rep, why = None, f"backend error: {exc!r}"[:300]
    else:
        why = "fewer than 3 valid candidates to re-score"
    out = rep.model_dump(mode="json") if rep is not None else {"skipped": why}
    store.set_meta("proxy_check", out)
    return out


def run_search(config: SearchConfig, runs_root: str | Path, *, mutator: Mutator | None = None,
               backend: EvaluationBackend | None = None, knowledge: Any = None,
               resume: bool = False, progress: Progress | None = None,
               write_outputs: bool = True, store: RunStore | None = None) -> RunResult:
    """Run (or resume) the search ``config`` under ``runs_root/NAME``.

    ``mutator``: any ``search.protocol.Mutator`` (the CLI builds it with
    ``agent.mutators.make_mutator``); ``backend``: default the registry's backend named by
    ``config.evaluation.backend`` or the space's default; ``knowledge``: a ``KnowledgeStore``
    or a list of ideas (default: the built-in corpus). On ``resume`` the saved config of run
    NAME is used and the given one only supplies the name. ``store``: an open store to use
    instead of ``runs_root/NAME/run.db`` (the benchmark harness passes an in-memory one).
    """
    from archlore.search.strategies.fairnad import load_ideas

    run_dir = Path(runs_root) / config.with_name().name
    fresh = store is None and not resume and not run_dir.exists()
    own_store = store is None
    store = store if store is not None else RunStore(run_dir, create=not resume)
    started = False
    try:
        if resume:
            saved = store.get_meta("config")
            if saved is None:
                raise RunExists(f"run {run_dir.name} has no saved config to resume from")
            config = SearchConfig.model_validate(saved)
        else:
            config = config.with_name()
            if store.count() > 0:
                raise RunExists(f"run {config.name!r} already exists in {run_dir}; "
                                f"use --resume {config.name} or another --name")
            store.set_meta("config", config.model_dump(mode="json"))
            store.set_meta("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        space = SPACES.get(config.space)()
        strategy_cls = STRATEGIES.get(config.strategy)
        if space.needs_code and backend is None:  # scored by training: the data must be there
            from archlore.evaluator.download import ensure_dataset

            ensure_dataset(config.dataset, config.data_root, download=config.download)
        objectives = get_objectives(config.objectives)
        constraints = constraints_of(config)
        if resume:  # the ideas the run started with, even if the knowledge store grew since
            ideas = list(store.ideas().values()) or load_ideas(knowledge)
        else:
            ideas = load_ideas(knowledge)
            store.save_ideas(ideas)
        refs = hv_references(config, objectives, space, constraints, store.get_meta("hv_refs"))
        store.set_meta("hv_refs", dict(zip(config.objectives, refs, strict=True)))
        store.set_meta("objectives", config.objectives)
        store.set_meta("recipe", {**config.recipe.model_dump(), "seed": config.seed,
                                  "dataset": config.dataset})
        strategy = strategy_cls(StrategyContext(
            space=space, seed=config.seed, constraints=constraints, mutator=mutator,
            knowledge=knowledge, ideas=ideas, objectives=objectives, options=config.options,
            data_root=config.data_root))
        own_backend = backend is None
        if backend is None:
            backend = make_backend(config, space)
        engine = SearchEngine(
            store, strategy, backend, budget=config.budget, seed=config.seed,
            constraints=constraints, space_name=config.space, mutator=mutator,
            ideas={i.id: i for i in ideas},
            novelty=NoveltyFilter(config.novelty.threshold, shingle=config.novelty.shingle),
            repair_turns=config.repair_turns,
            max_proposals=int(config.budget * config.max_proposals_factor),
            objectives=objectives, hv_refs=refs, uses_code=space.needs_code, progress=progress,
            fidelity=fidelity_plan(config, backend, space, objectives))
        store.set_meta("status", "running")
        started = True
        t0 = time.monotonic()
        status = "interrupted"
        try:
            status = engine.run()
            if status == "finished":
                record_proxy_check(config, store, backend, space, objectives)
        finally:
            if own_backend:
                backend.close(cancel=status != "finished")
        seconds = store.get_meta("seconds", 0.0) + (time.monotonic() - t0)
        store.set_meta("seconds", seconds)
        store.set_meta("status", status)
        store.set_meta("stop_reason", engine.stop_reason)
        store.set_meta("result", {"front": engine.front_ids(), "repaired": engine.repaired,
                                  "hypervolume": engine.front.hypervolume})
        fid = engine.fidelity_summary()
        if fid is not None:
            store.set_meta("fidelity", fid)
        if write_outputs:
            from archlore.search.report import write_outputs as _write

            _write(store)
        return RunResult(name=config.name or "", run_dir=str(run_dir), status=status,
                         counts=store.summary(), front=engine.front_ids(),
                         hypervolume=engine.front.hypervolume, best_val_acc=engine.front.best,
                         repaired=engine.repaired, usage=engine.usage, seconds=seconds,
                         stop_reason=engine.stop_reason, fidelity=fid)
    except Exception as exc:
        if fresh and not started:  # bad setup (space, dataset, table...): leave no empty run
            store.close()
            shutil.rmtree(run_dir, ignore_errors=True)
        elif started:  # the run broke: say so in the store instead of leaving it "running"
            store.set_meta("status", "failed")
            store.set_meta("stop_reason", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own_store:
            store.close()
