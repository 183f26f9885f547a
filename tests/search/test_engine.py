"""Engine schedule: asynchronous yet deterministic; interrupted + resumed == uninterrupted.

Runs FairNAD with the real offline mutator and the real SQLite store on the NAS-Bench-201
table (instant, real accuracies), so many candidates are cheap. A backend that answers after
random delays from a thread pool makes evaluations finish out of order.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from archlore.agent.mutators import make_mutator
from archlore.search.backends.table import TableBackend as NB201TableBackend
from archlore.search.config import SearchConfig
from archlore.search.run import run_search
from archlore.search.spaces.nb201_table import NB201Table
from archlore.search.store import RunStore

TABLE = Path(os.environ.get("ARCHLORE_NB201_TABLE")
             or Path(__file__).resolve().parents[3] / "shared" / "data" / "nb201.csv")
pytestmark = pytest.mark.skipif(not TABLE.is_file(), reason=f"NAS-Bench-201 table not at {TABLE}")


class DelayedBackend:
    """The table backend, answering from worker threads after random delays (out of order)."""

    def __init__(self, table: NB201Table, workers: int, seed: int) -> None:
        self.inner = NB201TableBackend(table)
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers)
        self.rng = random.Random(seed)

    def submit(self, candidate) -> Future:
        delay = self.rng.random() * 0.01

        def answer():
            time.sleep(delay)
            return self.inner.submit(candidate).result()

        return self.pool.submit(answer)

    name = "delayed"

    def slots(self) -> int:
        return self.workers

    def describe(self) -> dict:
        return {"backend": self.name, "workers": self.workers}

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True)


def archive(run_dir: Path) -> list[tuple]:
    with RunStore(run_dir, create=False) as st:
        return [(c.id, c.code_hash, c.status, c.operator, tuple(c.parents), c.idea_id,
                 c.evaluation.val_acc if c.evaluation else None,
                 c.evaluation.macs if c.evaluation else None) for c in st.candidates()]


@pytest.fixture(scope="module")
def table() -> NB201Table:
    return NB201Table(TABLE, dataset="cifar10")


def _cfg(name: str, workers: int, budget: int = 60) -> SearchConfig:
    # `local` at weight 1 (default 12: 12 of 13 proposals on NB201), so that 60 candidates
    # exercise every mutation type the engine must keep deterministic
    return SearchConfig(name=name, space="nb201", dataset="cifar10", budget=budget, seed=7,
                        workers=workers, n_seeds=5, options={"mutation": {"local": 1.0}})


def _run(tmp: Path, cfg: SearchConfig, backend, resume: bool = False, stop_after: int | None = None):
    def progress(snap):
        if stop_after is not None and snap["told"] >= stop_after:
            raise KeyboardInterrupt

    return run_search(cfg, tmp, mutator=make_mutator("offline"), backend=backend, resume=resume,
                      progress=progress, write_outputs=False)


def test_out_of_order_completion_does_not_change_the_run(tmp_path, table):
    a = _run(tmp_path, _cfg("instant", 3), NB201TableBackend(table, workers=3))
    b = _run(tmp_path, _cfg("delayed", 3), DelayedBackend(table, 3, seed=1))
    c = _run(tmp_path, _cfg("delayed2", 3), DelayedBackend(table, 3, seed=2))
    assert a.status == b.status == c.status == "finished"
    arch_a = archive(tmp_path / "instant")
    assert arch_a == archive(tmp_path / "delayed") == archive(tmp_path / "delayed2")
    assert a.counts["evaluated"] == 60
    # the run really mutated: every FairNAD operator and the fair sampler's ideas show up
    ops = {row[3] for row in arch_a}
    assert {"idea", "pareto", "crossover"} <= ops and ops & {"init", "random"}
    assert len({row[5] for row in arch_a if row[5]}) >= 5
    assert a.front == b.front and a.hypervolume == b.hypervolume > 0


def test_interrupt_then_resume_equals_uninterrupted(tmp_path, table):
    full = _run(tmp_path, _cfg("full", 2), DelayedBackend(table, 2, seed=3))
    part = _run(tmp_path, _cfg("cut", 2), DelayedBackend(table, 2, seed=4), stop_after=23)
    assert part.status == "interrupted"
    with RunStore(tmp_path / "cut", create=False) as st:
        stored = st.count()
        assert 23 <= stored < full.counts["candidates"]
        assert st.get_meta("status") == "interrupted"
    done = _run(tmp_path, _cfg("cut", 2), DelayedBackend(table, 2, seed=5), resume=True)
    assert done.status == "finished"
    assert archive(tmp_path / "cut") == archive(tmp_path / "full")
    assert done.counts == full.counts and done.front == full.front
    assert done.hypervolume == pytest.approx(full.hypervolume)


def test_duplicates_are_counted_told_and_not_evaluated(tmp_path, table):
    backend = NB201TableBackend(table, workers=2)
    res = _run(tmp_path, _cfg("dups", 2, budget=80), backend)
    with RunStore(tmp_path / "dups", create=False) as st:
        dups = st.candidates("duplicate")
        archs = [c.arch for c in st.candidates() if c.status != "duplicate"]
        state = st.get_meta("strategy_state")
    assert res.counts["duplicates"] == len(dups) > 0
    assert all(c.evaluation is None for c in dups)
    assert len(archs) == len(set(archs)) == 80  # every evaluated cell is new
    assert backend.queries == 80  # duplicates never reached the backend
    told = sum(v["told"] for v in state["operators"].values())
    assert told == res.counts["candidates"]  # duplicates were told to the strategy too
    assert sum(v["duplicate"] for v in state["operators"].values()) == len(dups)


def test_resume_of_unknown_or_existing_run_is_a_clear_error(tmp_path, table):
    from archlore.search.run import RunExists
    from archlore.search.store import RunStoreError

    with pytest.raises(RunStoreError, match="no run store"):
        _run(tmp_path, _cfg("ghost", 2), NB201TableBackend(table), resume=True)
    _run(tmp_path, _cfg("once", 2, budget=5), NB201TableBackend(table))
    with pytest.raises(RunExists, match="--resume once"):
        _run(tmp_path, _cfg("once", 2, budget=5), NB201TableBackend(table))
    assert len(archive(tmp_path / "once")) >= 5  # nothing lost
