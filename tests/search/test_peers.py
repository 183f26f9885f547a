"""The tuned peers (local search, Optuna TPE / NSGA-II, the prior alone), FairNAD's new
options and the misleading-prior task: determinism, resume, clear errors."""

from __future__ import annotations

import pytest
from archlore.agent.mutators import make_mutator
from archlore.search.bench import (
    PERMUTATION,
    BenchSpec,
    PermutedTable,
    permute_arch,
    resolve_config,
    run_once,
)
from archlore.search.config import SearchConfig
from archlore.search.run import run_search
from archlore.search.spaces.nb201_table import NB201Table
from archlore.search.store import RunStore

from tests.search.nb201_fixtures import table_path

NB201_ONLY = ("tpe", "nsga2", "prior")


def _cfg(strategy, name, budget=12, **kw):
    return SearchConfig(name=name, space="nb201", strategy=strategy, dataset="cifar10",
                        table=str(table_path()), budget=budget, seed=5, **kw)


def _archive(d):
    with RunStore(d, create=False) as st:
        return [(c.id, c.status, c.arch, c.evaluation.val_acc if c.evaluation else None)
                for c in st.candidates()]


@pytest.mark.parametrize("strategy", ["local", "tpe", "nsga2", "prior"])
def test_peer_resumes_and_repeats_on_nb201(tmp_path, strategy):
    if strategy in ("tpe", "nsga2"):
        pytest.importorskip("optuna")
    run_search(_cfg(strategy, "full"), tmp_path, mutator=make_mutator("offline"),
               write_outputs=False)

    def stop(snap):
        if snap["told"] >= 4:
            raise KeyboardInterrupt

    run_search(_cfg(strategy, "part"), tmp_path, mutator=make_mutator("offline"), progress=stop,
               write_outputs=False)
    run_search(_cfg(strategy, "part"), tmp_path, mutator=make_mutator("offline"), resume=True,
               write_outputs=False)
    full = _archive(tmp_path / "full")
    assert full == _archive(tmp_path / "part")
    assert len({a for _, s, a, _ in full if s != "duplicate"}) == 12


@pytest.mark.parametrize("strategy", NB201_ONLY)
def test_nb201_only_strategies_refuse_the_open_space_clearly(tmp_path, strategy):
    if strategy in ("tpe", "nsga2"):
        pytest.importorskip("optuna")
    cfg = SearchConfig(name="x", space="open", strategy=strategy, dataset="synthetic",
                       budget=2, max_steps=2)
    with pytest.raises(ValueError, match="nb201 space only"):
        run_search(cfg, tmp_path, mutator=make_mutator("offline"), write_outputs=False)


def test_permuted_table_answers_with_the_permuted_cells_row():
    t = NB201Table(table_path(), "cifar10")
    p = PermutedTable(t)
    conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
    pool = permute_arch(conv)
    assert pool == ("|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|"
                    "none~2|")
    assert p.evaluate(pool).val_acc == t.evaluate(conv).val_acc
    assert p.evaluate(pool).macs == t.evaluate(conv).macs
    assert permute_arch(pool) == conv  # an involution
    assert all(PERMUTATION[PERMUTATION[o]] == o for o in PERMUTATION)
    assert p.evaluate("garbage").status == "rejected"
    with pytest.raises(ValueError):
        PermutedTable(t, {"none": "skip_connect", "skip_connect": "skip_connect"})


def test_named_configurations_and_fairnad_ablations_run_and_differ():
    assert resolve_config("rea-tuned")[0] == "rea"
    assert resolve_config("rea:population=20:sample=5") == ("rea", {"population": 20,
                                                                    "sample": 5})
    with pytest.raises(KeyError):
        resolve_config("nope")
    spec = BenchSpec(table=table_path(), budget=30, processes=1,
                     mutator_factory=lambda: make_mutator("offline"))
    got = {}
    for name in ("fairnad", "fairnad-paper", "fairnad-nostart", "fairnad-flat",
                 "fairnad-randideas", "fairnad-bare", "fairnad-fair", "fairnad-r2"):
        a = run_once(name, "cifar10", 2, spec, task="permuted")
        assert a.archs == run_once(name, "cifar10", 2, spec, task="permuted").archs
        assert len(set(a.archs)) == 30
        got[name] = a.archs
    assert len({tuple(v) for v in got.values()}) >= len(got) - 1  # 30 queries: a pair may tie
    # the classic start cells open the run (the default "auto" alternates them with random
    # cells on NB201) unless start="random"
    from archlore.search.spaces.nb201 import NB201Space
    classic = NB201Space().seeds()
    assert got["fairnad"][0:6:2] == classic[:3] and got["fairnad-r2"][:6] == classic[:6]
    assert not set(classic) & set(got["fairnad-nostart"][:6])



def test_mixed_start_alternates_classic_and_random_cells():
    from archlore.search.spaces.nb201 import NB201Space

    spec = BenchSpec(table=table_path(), budget=8, processes=1,
                     mutator_factory=lambda: make_mutator("offline"),
                     options={"fairnad#mixed": {"start": "mixed"}})
    archs = run_once("fairnad#mixed", "cifar10", 4, spec).archs
    classic = NB201Space().seeds()
    assert archs[0:6:2] == classic[:3]  # classic cells in their order on even slots
    assert not set(archs[1:6:2]) & set(classic)  # random cells between them

def test_prior_start_queries_the_priors_best_cell_first():
    spec = BenchSpec(table=table_path(), budget=8, processes=1,
                     mutator_factory=lambda: make_mutator("offline"))
    tr = run_once("fairnad-pstart", "cifar10", 0, spec)
    assert tr.archs[0] == "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|" \
                          "nor_conv_3x3~1|nor_conv_3x3~2|"
    assert run_once("fairnad-flat", "cifar10", 0, spec).archs[0] != tr.archs[0]


def _fairnad_run(tmp_path, name, budget, dataset="cifar10", **options):
    cfg = SearchConfig(name=name, space="nb201", strategy="fairnad", dataset=dataset,
                       table=str(table_path()), budget=budget, seed=3, options=options)
    run_search(cfg, tmp_path, mutator=make_mutator("offline"), write_outputs=False)
    with RunStore(tmp_path / name, create=False) as st:
        return [c for c in st.candidates() if c.status != "duplicate"]


def test_fairnad_local_climbs_by_first_improvement_and_restarts_at_a_local_optimum(tmp_path):
    from archlore.search.spaces.nb201 import NB201Space

    only_local = {"idea": 0, "pareto": 0, "refine": 0, "crossover": 0, "local": 1}
    cands = _fairnad_run(tmp_path, "climb", 160, mutation=only_local)
    space = NB201Space()
    val = {c.id: c.evaluation.val_acc for c in cands}
    seen: list[str] = []
    climb, best, restarts = None, None, 0
    for c in cands:
        if c.id >= 6:  # after the start cells every proposal is a climb step or a restart
            assert c.move in ("local", "restart")
            if c.move == "local":
                assert c.parents == [climb]  # always from the climb's current cell
                parent = next(x for x in cands if x.id == climb)
                assert c.arch in space.neighbours(parent.arch) and c.arch not in seen
            else:  # a restart only at a local optimum: every neighbour already scored
                parent = next(x for x in cands if x.id == climb)
                assert set(space.neighbours(parent.arch)) <= set(seen)
                restarts += 1
        v = val[c.id]
        if (climb is None or c.move == "restart" or v > best
                or (c.move == "local" and c.parents == [climb] and v > val[climb])):
            climb = c.id
        best = v if best is None else max(best, v)
        seen.append(c.arch)
    assert restarts >= 1
    # the climb is model-ordered: it beats the best start cell within a few steps
    assert max(val[c.id] for c in cands[:16]) > max(val[c.id] for c in cands[:6])


def test_fairnad_local_is_on_by_default_and_follows_the_evidence():
    from archlore.search.strategies.fairnad import FairNADOptions

    assert FairNADOptions().mutation.local > 0  # on by default (NB201)
    spec = BenchSpec(table=table_path(), budget=40, processes=1,
                     mutator_factory=lambda: make_mutator("offline"))
    with_local = run_once("fairnad", "cifar100", 1, spec, task="permuted")
    without = run_once("fairnad-nolocal", "cifar100", 1, spec, task="permuted")
    assert with_local.archs != without.archs
    # the climb follows the evidence on the misleading-prior task: better by query 40
    assert max(with_local.valid) > max(without.valid)


class _RecordingMutator:
    """The offline mutator, keeping every request it is sent."""

    def __init__(self) -> None:
        self.inner = make_mutator("offline")
        self.name, self.uses_paper_text = self.inner.name, self.inner.uses_paper_text
        self.requests: list = []

    def mutate(self, request):
        self.requests.append(request)
        return self.inner.mutate(request)

    def unsupported_reason(self, idea, space):
        return self.inner.unsupported_reason(idea, space)


def test_fairnad_tells_the_mutator_which_neighbours_of_the_parent_are_scored(tmp_path):
    from archlore.search.spaces.nb201 import NB201Space

    rec = _RecordingMutator()
    no_local = {"idea": 1, "pareto": 1, "refine": 1, "crossover": 0, "local": 0}
    cfg = SearchConfig(name="avoid", space="nb201", strategy="fairnad", dataset="cifar10",
                       table=str(table_path()), budget=40, seed=3,
                       options={"mutation": no_local, "screen": 1})
    run_search(cfg, tmp_path, mutator=rec, write_outputs=False)
    with RunStore(tmp_path / "avoid", create=False) as st:
        cands = st.candidates()
    space = NB201Space()
    by_id = {c.id: c for c in cands}
    checked = 0
    for req in rec.requests:
        if not req.parents or not req.parents[0].arch:
            continue
        parent = req.parents[0]
        scored_before = {c.arch for c in cands if c.id < max(by_id) and c.arch}
        nbrs = set(space.neighbours(parent.arch))
        assert set(req.avoid) <= nbrs and set(req.avoid) <= scored_before
        checked += bool(req.avoid)
    assert checked >= 5  # a climbing run keeps meeting scored neighbours


def test_knowledge_floor_shrinks_the_knowledge_driven_types_when_the_prior_is_contradicted():
    """``knowledge_floor``: on the misleading-prior task the prior's agreement with the
    evidence falls, and so does the share of the idea / pareto / refine / crossover types
    (never below the floor); without the option the mix stays fixed."""
    from archlore.search.bench import open_task_table
    from archlore.search.records import Candidate
    from archlore.search.registry import STRATEGIES
    from archlore.search.spaces.nb201 import NB201Space
    from archlore.search.strategies.base import StrategyContext
    from archlore.search.strategies.fairnad import KNOWLEDGE_TYPES, OPERATORS

    def run(options):
        ctx = StrategyContext(space=NB201Space(), seed=0, mutator=make_mutator("offline"),
                              options=options)
        s = STRATEGIES.get("fairnad")(ctx)
        table = open_task_table(table_path(), "cifar10", task="permuted")
        for i in range(30):
            (p,) = s.ask(1)
            c = Candidate(id=i, **p.model_dump())
            c.status, c.evaluation = "evaluated", table.evaluate(p.arch)
            s.tell(c)
        mix = dict(zip(OPERATORS, s._mix(), strict=True))
        return s, sum(mix[o] for o in KNOWLEDGE_TYPES)

    fixed_s, fixed = run({})
    checked_s, checked = run({"knowledge_floor": 0.1})
    assert fixed == pytest.approx(sum(fixed_s.mix[o] for o in KNOWLEDGE_TYPES))
    assert checked_s.model.prior_factor() < 0.5  # the evidence contradicts the prior here
    assert checked < fixed
    assert checked >= 0.1 * fixed / (0.1 * fixed + (1 - fixed)) - 1e-12
