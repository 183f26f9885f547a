"""The store's files: SQLite source of truth, refusing foreign directories, migrating the
previous version's JSON + chromadb store, chunk search and supporting passages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from archlore.knowledge.schema import Category, Idea, Paper, Provenance
from archlore.knowledge.store import KnowledgeStore, StoreError

from tests.knowledge.paper_pdfs import ARXIV


def test_a_foreign_non_empty_directory_is_refused_and_left_alone(tmp_path, embedder):
    foreign = tmp_path / "etc"
    foreign.mkdir()
    (foreign / "hosts").write_text("127.0.0.1 localhost")
    with pytest.raises(StoreError, match="not an archlore knowledge store"):
        KnowledgeStore(foreign, embedder=embedder, load_corpus=False)
    assert [p.name for p in foreign.iterdir()] == ["hosts"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        KnowledgeStore(tmp_path / "afile", embedder=embedder, load_corpus=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    KnowledgeStore(empty, embedder=embedder, load_corpus=False).close()  # empty is fine


def test_previous_version_store_is_migrated_on_open(tmp_path, embedder):
    old = tmp_path / "knowledge"
    old.mkdir()
    se = Idea(id="squeeze-excitation", name="Squeeze-and-Excitation", category=Category.ATTENTION,
              description="Channel gating.", provenance=[
                  Provenance(paper_id=ARXIV, page=2, quote="We insert SE blocks.")])
    paper = Paper(id=ARXIV, title="Old paper", sha256="ab" * 32, idea_ids=[se.id], pages=5)
    (old / "ideas.json").write_text(json.dumps({"meta": {"corpus_sha256": "x"},
                                                "ideas": [se.model_dump(mode="json")]}))
    (old / "papers.json").write_text(json.dumps([paper.model_dump(mode="json")]))
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(old / "chroma"),
                                       settings=Settings(anonymized_telemetry=False))
    vec = embedder.embed(["We insert squeeze-and-excitation blocks after every stage."])[0]
    client.get_or_create_collection("chunks", embedding_function=None).upsert(
        ids=["c1"], embeddings=[vec.tolist()],
        documents=["We insert squeeze-and-excitation blocks after every stage."],
        metadatas=[{"paper_id": ARXIV, "page": 2, "section": "2 Method", "title": "Old paper"}])
    del client

    store = KnowledgeStore(old, embedder=embedder, load_corpus=False)
    try:
        assert store.get("squeeze-excitation").provenance[0].page == 2
        assert [p.id for p in store.papers()] == [ARXIV]
        assert [c.page for c in store.chunks()] == [2]
        assert (old / "ideas.json.migrated").exists() and not (old / "ideas.json").exists()
        hits = store.search_chunks("squeeze and excitation channel gates", k=1)
        assert hits and hits[0].chunk.id == "c1" and hits[0].title == "Old paper"
    finally:
        store.close()
    again = KnowledgeStore(old, embedder=embedder, load_corpus=False)  # from store.sqlite now
    assert len(again) == 1 and len(again.papers()) == 1
    again.close()


def test_damaged_legacy_file_is_one_line_error_and_kept(tmp_path, embedder):
    old = tmp_path / "knowledge"
    old.mkdir()
    (old / "papers.json").write_text("[{")
    with pytest.raises(StoreError) as err:
        KnowledgeStore(old, embedder=embedder, load_corpus=False)
    assert "papers.json is not valid" in str(err.value) and "\n" not in str(err.value)
    assert (old / "papers.json").read_text() == "[{"


def test_supporting_chunks_and_chunk_search(make_store, paper_pdf):
    store = make_store()
    store.ingest([paper_pdf])
    (chunk,) = store.supporting_chunks("squeeze-excitation", k=1)
    assert chunk.page == 2 and "squeeze-and-excitation" in chunk.text
    hits = store.search_chunks("blur pooling before strided convolutions", k=2)
    assert hits[0].chunk.page == 3 and hits[0].score >= hits[1].score
    assert store.search_chunks("anything", k=2, paper_ids=["nope"]) == []
    store.add_ideas([Idea(id="corpus-only", name="Mixed pooling head", category=Category.DOWNSAMPLING,
                          description="Average and max pooling mixed in the head.")])
    assert store.supporting_chunks("corpus-only") == []  # no ingested paper supports it
    with pytest.raises(KeyError):
        store.chunks_for("missing")


def test_idea_flags_for_search_integration():
    llm_only = Idea(id="fire", name="Fire module", category=Category.BLOCK_TYPE,
                    description="Squeeze then expand.", source="offline",
                    apply_note="no structured edit", provenance=[
                        Provenance(paper_id="p", page=3, quote="We introduce the Fire module."),
                        Provenance(paper_id="q", role="mentions")])
    assert llm_only.llm_only and not llm_only.applicable_offline and llm_only.from_papers
    assert [p.paper_id for p in llm_only.supporting()] == ["p"]
    # an old record (no role / apply_note fields) still validates
    raw = llm_only.model_dump(mode="json")
    raw.pop("apply_note")
    for p in raw["provenance"]:
        p.pop("role")
    assert Idea.model_validate(raw).supporting()[1].paper_id == "q"


def test_rollback_restores_memory_and_disk(make_store, embedder):
    store = make_store()
    store.add_ideas([Idea(id="a", name="Alpha block", category=Category.BLOCK_TYPE,
                          description="An alpha block for tests.")])
    chunk_vecs = np.zeros((0, 384), np.float32)

    def boom(paper):
        raise RuntimeError("disk gone")

    store._put_paper = boom
    with pytest.raises(RuntimeError):
        store.commit_paper(Paper(id="x", sha256="0" * 64), [], chunk_vecs, [
            Idea(id="b", name="Beta gate", category=Category.ATTENTION,
                 description="A beta gating module for tests.")])
    assert [i.id for i in store.ideas()] == ["a"]
    assert [i.id for i in make_store().ideas()] == ["a"]
