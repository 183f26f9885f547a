"""LLMatic: archives fill, curiosity and temperature rules, operator mix, determinism,
and the open-ended space."""

from __future__ import annotations

import pytest
from archlore.agent.offline_nb201 import NB201OfflineMutator
from archlore.evaluator.records import Evaluation
from archlore.search.records import Candidate
from archlore.search.registry import STRATEGIES
from archlore.search.spaces.nb201 import NB201Space
from archlore.search.spaces.nb201_table import NB201Table
from archlore.search.strategies.base import StrategyContext
from archlore.search.strategies.llmatic import LLMaticTag

from tests.search.nb201_fixtures import table_path

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
B = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def make(seed=0, mutator=None, **options):
    ctx = StrategyContext(space=NB201Space(), seed=seed, mutator=mutator, options=options)
    return STRATEGIES.get("llmatic")(ctx)


def tag(generation: int, prompt_id: int, temperature: float, cell: int) -> dict:
    return LLMaticTag(generation=generation, prompt_id=prompt_id, temperature=temperature,
                      cell=cell).model_dump()


def ev(val: float | None, macs: int = 50_000_000, ok: bool = True) -> Evaluation:
    if not ok:
        return Evaluation(status="failed", stage="train", reason="NaN loss")
    return Evaluation(status="ok", stage="eval", val_acc=val, test_acc=val, macs=macs, params=1)


def run(strategy, table: NB201Table, n: int) -> list[Candidate]:
    seen, out = set(), []
    for i in range(n):
        (p,) = strategy.ask(1)
        c = Candidate(id=i, **p.model_dump())
        if p.arch in seen:
            c.status = "duplicate"
        else:
            seen.add(p.arch)
            c.status, c.evaluation = "evaluated", table.evaluate(p.arch)
        strategy.tell(c)
        out.append(c)
    return out


def test_archives_fill_and_operators_follow_the_mix():
    table = NB201Table(table_path(), "cifar10")
    s = make(seed=1, mutator=NB201OfflineMutator(), batch=20, initial=10)
    cands = run(s, table, 300)
    assert all(c.operator == "random" for c in cands[:10])
    later = [c.operator for c in cands[10:]]
    share = later.count("mutate") / len(later)
    assert 0.6 < share < 0.8 and later.count("crossover") / len(later) > 0.2
    st = s.stats()
    # the archive fills (7 niches for this seed since the offline NB201 mutator places ops
    # uniformly instead of by the removed hand-set prior; 8 before)
    assert st["network_elites"] >= 5 and st["prompt_elites"] >= 3
    assert st["added"] > 0 and st["not_added"] > 0
    # the archive keeps, per niche, the best validation accuracy seen there
    assert st["best_val_acc"] == pytest.approx(max(c.evaluation.val_acc for c in cands
                                                   if c.evaluation is not None))
    # mutations use LLMatic's NB201 prompts as instructions (ideas with cell ops offline)
    assert all(c.idea_id.startswith("llmatic-prompt-") for c in cands if c.operator == "mutate")


def test_curiosity_and_temperature_rules():
    s = make()
    s.tell(Candidate(id=0, arch=A, status="evaluated", evaluation=ev(0.5),
                     strategy_data=tag(0, -1, 0, -1)))
    assert len(s.networks) == 1
    # a new niche, better than the previous generation's best: +1 curiosity, T + 0.05
    s.tell(Candidate(id=1, arch=B, status="evaluated", evaluation=ev(0.6, macs=10_000_000),
                     strategy_data=tag(1, 2, 0.6000, -1)))
    assert len(s.networks) == 2
    data = s.prompt_archive.data()
    assert list(data["solution"][0]) == [2, pytest.approx(0.65)]
    cell = int(data["index"][0])
    assert s.curiosity[cell] == 1.0 and s.prompt_fitness[2] == 1.0
    # not added (same niche as A, worse): -0.5, and T - 0.05 (worse than generation 0's best)
    s.tell(Candidate(id=2, arch=A, status="evaluated", evaluation=ev(0.1),
                     strategy_data=tag(1, 2, 0.6500, cell)))
    assert s.curiosity[cell] == 0.5
    assert s.last_offer[:2] == (2, pytest.approx(0.60))
    # untrainable: -1
    s.tell(Candidate(id=3, arch=A, status="evaluated", evaluation=ev(None, ok=False),
                     strategy_data=tag(2, 2, 0.6500, cell)))
    assert s.curiosity[cell] == -0.5
    assert s.last_offer[:2] == (2, pytest.approx(0.60))  # untrainable: worse, T - 0.05
    assert s.last_offer[:2] == (2, pytest.approx(0.60))
    assert (s.added, s.not_added, s.untrainable) == (2, 1, 1)


def test_most_curious_prompt_drives_half_the_batch_and_half_is_jittered():
    table = NB201Table(table_path(), "cifar100")
    s = make(seed=2, mutator=NB201OfflineMutator(), batch=10, initial=10)
    cands = run(s, table, 200)
    tags = [LLMaticTag.model_validate(c.strategy_data) for c in cands[10:]
            if c.operator == "mutate"]
    temps = [t.temperature for t in tags]
    assert all(0.0 <= t <= 1.0 for t in temps)
    assert len({round(t, 4) for t in temps}) > 10  # jitter spreads the temperatures
    assert any(t.cell >= 0 for t in tags)  # curious picks from the prompt archive
    assert any(t.cell < 0 for t in tags)  # and random prompts


def test_deterministic_per_seed():
    table = NB201Table(table_path(), "ImageNet16-120")
    a = [c.arch for c in run(make(seed=5, mutator=NB201OfflineMutator()), table, 80)]
    b = [c.arch for c in run(make(seed=5, mutator=NB201OfflineMutator()), table, 80)]
    c = [c.arch for c in run(make(seed=6, mutator=NB201OfflineMutator()), table, 80)]
    assert a == b and a != c


def test_works_in_the_open_space_with_the_offline_mutator():
    from archlore.agent.offline import OfflineMutator
    from archlore.search.protocol import Constraints
    from archlore.search.spaces.open import OpenSpace

    ctx = StrategyContext(space=OpenSpace(), seed=0, mutator=OfflineMutator(),
                          constraints=Constraints(dataset="digits", in_channels=1,
                                                  num_classes=10, image_size=8),
                          options={"batch": 4, "initial": 4})
    s = STRATEGIES.get("llmatic")(ctx)
    ops = []
    for i in range(12):
        (p,) = s.ask(1)
        assert p.code and "class Net" in p.code or p.error
        ops.append(p.operator)
        macs = 100_000 * (i + 1)
        s.tell(Candidate(id=i, **p.model_dump(), status="evaluated",
                         evaluation=ev(0.5 + 0.01 * i, macs=macs) if not p.error else ev(None, ok=False)))
    assert ops[:4] == ["random"] * 4 and set(ops[4:]) <= {"mutate", "crossover"}
    assert len(s.networks) >= 2


class CountingMutator:
    """The offline NB201 mutator, counting its calls (an LLM mutator would bill each one)."""

    name = "offline"

    def __init__(self) -> None:
        self.inner, self.calls = NB201OfflineMutator(), 0

    def mutate(self, request):
        self.calls += 1
        return self.inner.mutate(request)


def test_resume_reuses_stored_proposals_without_calling_the_mutator(tmp_path):
    """Resume re-tells stored candidates: LLMatic must not ask the mutator (an LLM: tokens,
    time, a different answer) again for proposals already in the store."""
    from archlore.search.backends.table import TableBackend as NB201TableBackend
    from archlore.search.config import SearchConfig
    from archlore.search.run import run_search
    from archlore.search.store import RunStore

    table = NB201Table(table_path(), "cifar10")

    def go(name, mutator, resume=False, stop_after=None):
        def progress(snap):
            if stop_after is not None and snap["told"] >= stop_after:
                raise KeyboardInterrupt

        cfg = SearchConfig(name=name, space="nb201", dataset="cifar10", budget=50, seed=3,
                           workers=2, strategy="llmatic", options={"batch": 10, "initial": 5})
        return run_search(cfg, tmp_path, mutator=mutator, backend=NB201TableBackend(table, 2),
                          resume=resume, progress=progress, write_outputs=False)

    full = go("full", CountingMutator())
    assert go("cut", CountingMutator(), stop_after=30).status == "interrupted"
    with RunStore(tmp_path / "cut", create=False) as st:
        stored = st.count()
    again = CountingMutator()
    done = go("cut", again, resume=True)
    assert done.status == "finished" and done.counts == full.counts and done.front == full.front
    with RunStore(tmp_path / "cut", create=False) as st:
        new = [c for c in st.candidates() if c.id >= stored]
    assert again.calls == sum(c.operator in ("mutate", "crossover") for c in new)


def test_update_replaces_a_stale_elite_with_the_higher_rung_result():
    """Multi-fidelity: two networks in one niche; the rung-0 elite is promoted and scores
    lower at the higher rung, so the niche's elite must become the other network."""
    s = make(seed=0)
    a = Candidate(id=0, arch=A, status="evaluated", evaluation=ev(0.7),
                  strategy_data=tag(0, -1, 0.5, -1))
    b = Candidate(id=1, arch=A, status="evaluated", evaluation=ev(0.6),
                  strategy_data=tag(0, -1, 0.5, -1))
    s.tell(a)
    s.tell(b)
    assert s.stats()["network_elites"] == 1 and s.stats()["best_val_acc"] == pytest.approx(0.7)
    a.evaluation = ev(0.5)  # the engine updates the told object in place
    s.update(a)
    assert s.stats()["best_val_acc"] == pytest.approx(0.6)
    assert s.networks.data("solution")[:, 0].astype(int).tolist() == [1]
    b.evaluation = ev(0.8)
    s.update(b)
    assert s.stats()["best_val_acc"] == pytest.approx(0.8)
    a.evaluation = ev(0.9)  # a non-elite member overtakes the elite
    s.update(a)
    assert s.networks.data("solution")[:, 0].astype(int).tolist() == [0]
    assert s.stats()["best_val_acc"] == pytest.approx(0.9)
    # the "added" credit is judged at tell time: that archive still holds rung-0 values
    assert s.networks_told.data("objective").tolist() == pytest.approx([0.7])
