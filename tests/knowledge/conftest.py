from __future__ import annotations

from pathlib import Path

import pytest

from tests.knowledge.paper_pdfs import paper_pages, write_pdf


@pytest.fixture(scope="session")
def embedder():
    """One real MiniLM (int8 ONNX) embedder for the whole session (loading costs ~0.5 s)."""
    from archlore.knowledge.embed import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture
def make_store(tmp_path, embedder):
    from archlore.knowledge.store import KnowledgeStore

    stores = []

    def make(name: str = "knowledge", **kw):
        kw.setdefault("load_corpus", False)
        store = KnowledgeStore(tmp_path / name, embedder=embedder, **kw)
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()


@pytest.fixture(scope="session")
def paper_pdf(tmp_path_factory) -> Path:
    """The 5-page paper with known ideas on known pages (see paper_pdfs.KNOWN_PAGES)."""
    path = tmp_path_factory.mktemp("papers") / "squeeze_networks.pdf"
    return write_pdf(path, paper_pages())
