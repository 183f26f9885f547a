"""Concurrent writers: two ``archlore ingest`` processes into one store keep every paper."""

from __future__ import annotations

import pytest

from tests.knowledge.concurrent import distinct_papers, ingest_concurrently


@pytest.mark.slow
def test_two_ingest_processes_keep_every_paper(tmp_path):
    from archlore.knowledge.store import KnowledgeStore

    for rnd in range(2):
        home = tmp_path / f"home{rnd}"
        a = distinct_papers(tmp_path / f"a{rnd}", 5, f"a{rnd}")
        b = distinct_papers(tmp_path / f"b{rnd}", 5, f"b{rnd}")
        outs, _ = ingest_concurrently(home, [a, b])
        assert all("5 ok" in out for out in outs), outs
        store = KnowledgeStore(home / "knowledge", load_corpus=False)
        try:
            titles = {p.title for p in store.papers()}
            assert len(store.papers()) == 10 and len(titles) == 10, titles
            assert {c.paper_id for c in store.chunks()} == {p.id for p in store.papers()}
            cited = {pr.paper_id for i in store.ideas() for pr in i.provenance if pr.quote}
            assert cited == {p.id for p in store.papers()}  # no paper's ideas were lost
        finally:
            store.close()


@pytest.mark.slow
def test_the_same_papers_ingested_twice_at_once_are_stored_once(tmp_path):
    from archlore.knowledge.store import KnowledgeStore

    papers = distinct_papers(tmp_path / "p", 3, "same")
    home = tmp_path / "home"
    outs, _ = ingest_concurrently(home, [papers, papers])
    store = KnowledgeStore(home / "knowledge", load_corpus=False)
    try:
        assert len(store.papers()) == 3
        assert sum(out.count("skipped") for out in outs) >= 1
    finally:
        store.close()
