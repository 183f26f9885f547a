"""The knowledge store: ideas, papers and paper chunks under one directory.

Layout of ``path`` (the data directory's ``knowledge/``):
- ``ideas.json``: every idea (the in-memory mirror's source of truth for listing/filtering)
- ``papers.json``: every ingested paper (keyed by sha256, so re-ingesting is a no-op)
- ``chroma/``: chromadb ``PersistentClient`` (telemetry off) with collections ``ideas`` and
  ``chunks`` (metadata: category / paper / page / section), vectors from our offline embedder
- ``embeddings.sqlite``: embedding cache keyed by text hash

Listing and semantic search over ideas run on the in-memory mirror (a dict plus a (n, 384)
matrix), so the search loop never waits on chromadb; chunk retrieval queries chromadb.
The built-in corpus (``corpora.load_builtin_ideas``) is loaded lazily on first use and
re-synced when it changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from archlore.knowledge.embed import CachedEmbedder, Embedder, default_embedder
from archlore.knowledge.merge import DuplicateIndex, idea_text, matvec, merge_into
from archlore.knowledge.schema import Category, Chunk, Idea, Paper

log = logging.getLogger(__name__)

IDEAS_COLLECTION = "ideas"
CHUNKS_COLLECTION = "chunks"
_CHROMA_BATCH = 2000


class StoreError(Exception):
    """The store's files cannot be read; ``str(err)`` is one line naming them."""


@dataclass
class Hit:
    idea: Idea
    score: float  # cosine similarity in [-1, 1]


@dataclass
class AddResult:
    new: list[str]  # ids of ideas added
    merged: list[str]  # ids of existing ideas that absorbed a near-duplicate


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


class KnowledgeStore:
    """Ideas + papers + chunks under ``path``; see the module docstring for the layout."""

    def __init__(self, path: str | Path, embedder: Embedder | None = None,
                 load_corpus: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.embedder = CachedEmbedder(embedder or default_embedder,  # loads on first use
                                       self.path / "embeddings.sqlite")
        self._ideas_file = self.path / "ideas.json"
        self._papers_file = self.path / "papers.json"
        self._index: DuplicateIndex | None = None  # built lazily (needs embeddings)
        self._ideas: dict[str, Idea] = {}
        self._meta: dict[str, Any] = {}
        self._papers: dict[str, Paper] = {}  # by sha256
        self._client = None
        self._load()
        if load_corpus:
            self.sync_corpus()

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        current = self._ideas_file
        try:
            if self._ideas_file.exists():
                data = json.loads(self._ideas_file.read_text())
                self._meta = data.get("meta", {})
                for raw in data.get("ideas", []):
                    idea = Idea.model_validate(raw)
                    self._ideas[idea.id] = idea
            current = self._papers_file
            if self._papers_file.exists():
                for raw in json.loads(self._papers_file.read_text()):
                    paper = Paper.model_validate(raw)
                    self._papers[paper.sha256] = paper
        except (ValueError, TypeError, AttributeError) as exc:  # JSON / pydantic / wrong shape
            raise StoreError(f"{current} is not valid ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0]}); fix it or move it away") from None

    def _save_ideas(self) -> None:
        _atomic_write_json(self._ideas_file, {
            "meta": self._meta,
            "ideas": [i.model_dump(mode="json") for i in self._ideas.values()]})

    def _save_papers(self) -> None:
        _atomic_write_json(self._papers_file,
                           [p.model_dump(mode="json") for p in self._papers.values()])

    def _chroma(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings

            self._client = chromadb.PersistentClient(
                path=str(self.path / "chroma"),
                settings=Settings(anonymized_telemetry=False, allow_reset=False))
        return self._client

    def _collection(self, name: str):
        return self._chroma().get_or_create_collection(
            name, embedding_function=None, metadata={"hnsw:space": "cosine"})

    def _dup_index(self) -> DuplicateIndex:
        if self._index is None:
            index = DuplicateIndex(self.embedder.dim)
            ideas = list(self._ideas.values())
            vecs = self.embedder.embed([idea_text(i) for i in ideas]) if ideas else []
            for idea, vec in zip(ideas, vecs, strict=True):
                index.add(idea, vec)
            self._index = index
        return self._index

    # ------------------------------------------------------------------ corpus
    def sync_corpus(self) -> int:
        """Load the built-in corpus if it is installed and changed; returns ideas upserted."""
        try:
            from archlore.corpora import load_builtin_ideas  # type: ignore[attr-defined]
        except ImportError:
            return 0
        try:
            corpus = list(load_builtin_ideas())
        except Exception as exc:  # a broken corpus must not make the store unusable
            log.warning("archlore: built-in corpus failed to load: %s", exc)
            return 0
        digest = hashlib.sha256(json.dumps(
            [i.model_dump(mode="json") for i in corpus], sort_keys=True).encode()).hexdigest()
        if self._meta.get("corpus_sha256") == digest:
            return 0
        synced: list[Idea] = []
        for idea in corpus:
            old = self._ideas.get(idea.id)
            if old is not None:  # keep provenance gathered from ingested papers
                # corpus citations carry no page/quote: old ones must not outlive a corpus fix
                extra = [p for p in old.provenance if p not in idea.provenance
                         and (p.page is not None or p.quote)]
                idea = idea.model_copy(update={"provenance": list(idea.provenance) + extra})
            self._ideas[idea.id] = idea
            synced.append(idea)
        self._meta["corpus_sha256"] = digest
        self._index = None
        self._write_ideas(synced)  # the merged ideas, so chromadb matches ideas.json
        return len(corpus)

    # ------------------------------------------------------------------ ideas
    def ideas(self, category: Category | str | None = None) -> list[Idea]:
        """All ideas, or those of one category (in insertion order)."""
        if category is None:
            return list(self._ideas.values())
        cat = Category(category)
        return [i for i in self._ideas.values() if i.category == cat]

    def get(self, idea_id: str) -> Idea | None:
        return self._ideas.get(idea_id)

    def __len__(self) -> int:
        return len(self._ideas)

    def categories(self) -> list[Category]:
        """Categories that have at least one idea, in vocabulary order."""
        present = {i.category for i in self._ideas.values()}
        return [c for c in Category if c in present]

    def sample(self, n: int = 1, rng: random.Random | None = None,
               category: Category | str | None = None) -> list[Idea]:
        """``n`` ideas drawn fairly: a uniformly random non-empty category, then a uniformly
        random idea in it (FairNAD's balance over categories). With replacement."""
        rng = rng or random.Random()
        cats = [Category(category)] if category is not None else self.categories()
        by_cat = {c: self.ideas(c) for c in cats}
        cats = [c for c in cats if by_cat[c]]
        if not cats:
            return []
        return [rng.choice(by_cat[rng.choice(cats)]) for _ in range(n)]

    def add_ideas(self, ideas: Iterable[Idea], merge: bool = True) -> AddResult:
        """Add ideas, merging near-duplicates into existing ones (keeping all provenance)."""
        ideas = list(ideas)
        result = AddResult([], [])
        if not ideas:
            return result
        index = self._dup_index()
        vecs = self.embedder.embed([idea_text(i) for i in ideas])
        touched: dict[str, Idea] = {}
        for idea, vec in zip(ideas, vecs, strict=True):
            j = index.find(idea, vec) if merge else index.index_of(idea.id)
            if j is None:
                idea = idea.model_copy(deep=True)
                index.add(idea, vec)
                self._ideas[idea.id] = idea
                touched[idea.id] = idea
                result.new.append(idea.id)
            else:
                existing = index.ideas[j]
                if merge_into(existing, idea):
                    touched[existing.id] = existing
                if existing.id not in result.new and existing.id not in result.merged:
                    result.merged.append(existing.id)
        if touched:
            self._write_ideas(list(touched.values()))
        return result

    def _write_ideas(self, ideas: Sequence[Idea]) -> None:
        """Persist ideas: chromadb first (idempotent upsert), then the JSON mirror."""
        if ideas:
            vecs = self.embedder.embed([idea_text(i) for i in ideas])
            col = self._collection(IDEAS_COLLECTION)
            for s in range(0, len(ideas), _CHROMA_BATCH):
                part = ideas[s:s + _CHROMA_BATCH]
                col.upsert(
                    ids=[i.id for i in part],
                    embeddings=vecs[s:s + _CHROMA_BATCH].tolist(),
                    documents=[idea_text(i) for i in part],
                    metadatas=[_idea_metadata(i) for i in part])
        self._save_ideas()

    def search(self, query: str, k: int = 10,
               category: Category | str | None = None) -> list[Hit]:
        """The ``k`` ideas most similar to ``query`` (cosine of MiniLM vectors), best first."""
        index = self._dup_index()
        if not index.ideas or k <= 0:
            return []
        q = self.embedder.inner.embed([query])[0]  # queries skip the on-disk cache
        sims = matvec(index.matrix, q)
        if category is not None:
            cat = Category(category)
            sims = np.where(index.category_mask(cat), sims, -np.inf)
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return [Hit(index.ideas[i], float(sims[i])) for i in top if np.isfinite(sims[i])]

    # ------------------------------------------------------------------ papers & chunks
    def papers(self) -> list[Paper]:
        return list(self._papers.values())

    def paper_by_sha256(self, sha256: str) -> Paper | None:
        return self._papers.get(sha256)

    def commit_paper(self, paper: Paper, chunks: Sequence[Chunk], chunk_vectors: np.ndarray,
                     ideas: Sequence[Idea]) -> AddResult:
        """Write one fully-extracted paper: chunks, then ideas, then the paper record last
        (a paper is "ingested" only once everything else is on disk). On any failure the
        store is rolled back to its state before the call (memory, JSON mirrors, chromadb)."""
        snapshot = {f: f.read_bytes() for f in (self._ideas_file, self._papers_file) if f.exists()}
        fresh_chunks: list[str] = []
        try:
            if chunks:
                col = self._collection(CHUNKS_COLLECTION)
                for s in range(0, len(chunks), _CHROMA_BATCH):
                    part = chunks[s:s + _CHROMA_BATCH]
                    ids = [c.id for c in part]
                    present = set(col.get(ids=ids, include=[])["ids"])
                    fresh_chunks += [i for i in ids if i not in present]
                    col.upsert(
                        ids=ids,
                        embeddings=np.asarray(chunk_vectors[s:s + _CHROMA_BATCH]).tolist(),
                        documents=[c.text for c in part],
                        metadatas=[{"paper_id": c.paper_id, "page": c.page, "section": c.section,
                                    "title": paper.title} for c in part])
            result = self.add_ideas(ideas)
            paper.idea_ids = list(dict.fromkeys(result.new + result.merged))
            self._papers[paper.sha256] = paper
            self._save_papers()
        except BaseException:
            self._roll_back(snapshot, fresh_chunks)
            raise
        return result

    def _roll_back(self, snapshot: dict[Path, bytes], fresh_chunks: list[str]) -> None:
        """Undo a failed ``commit_paper``: add_ideas changes memory (and maybe disk) before
        the failure, so restore the JSON mirrors, reload them, and make chromadb match."""
        try:
            for f in (self._ideas_file, self._papers_file):
                if f not in snapshot:
                    f.unlink(missing_ok=True)
                elif f.read_bytes() != snapshot[f]:  # rewrite only what changed, atomically
                    tmp = f.with_suffix(f.suffix + ".rollback")
                    tmp.write_bytes(snapshot[f])
                    os.replace(tmp, f)
            self._ideas, self._papers, self._meta, self._index = {}, {}, {}, None
            self._load()
            if fresh_chunks:
                self._collection(CHUNKS_COLLECTION).delete(ids=fresh_chunks)
            col = self._collection(IDEAS_COLLECTION)
            stale = set(col.get(include=[])["ids"]) - set(self._ideas)
            if stale:
                col.delete(ids=sorted(stale))
            self._write_ideas(list(self._ideas.values()))
        except Exception as exc:  # the original error is the one to report
            log.warning("archlore: rolling back a failed paper commit failed too: %s", exc)

    def chunks_for(self, idea_id: str, k: int = 3) -> list[Chunk]:
        """The ``k`` paper chunks closest to the idea, from the papers its provenance cites when
        they were ingested, else from every ingested paper."""
        idea = self._ideas.get(idea_id)
        if idea is None:
            raise KeyError(f"no idea with id {idea_id!r}")
        if not self._papers:
            return []
        col = self._collection(CHUNKS_COLLECTION)
        if col.count() == 0:
            return []
        vec = self.embedder.embed([idea_text(idea)])[0].tolist()
        known = {p.id for p in self._papers.values()}
        cited = sorted({p.paper_id for p in idea.provenance} & known)
        where: dict[str, Any] | None = None
        if len(cited) == 1:
            where = {"paper_id": cited[0]}
        elif cited:
            where = {"paper_id": {"$in": cited}}
        n = min(max(4 * k, 12), col.count())
        res = col.query(query_embeddings=[vec], n_results=n, where=where,
                        include=["documents", "metadatas", "distances"])
        evidence = {(p.paper_id, p.page) for p in idea.provenance}
        quotes = [p.quote[:80] for p in idea.provenance if p.quote]
        ranked = []
        for cid, doc, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                        res["distances"][0], strict=True):
            chunk = Chunk(id=cid, paper_id=str(meta["paper_id"]), page=int(meta["page"]),
                          section=str(meta.get("section", "")), text=doc)
            flat = " ".join(doc.split())
            # evidence first: chunks holding a provenance quote, then chunks on a cited page
            support = 2 * any(q in flat for q in quotes) + ((chunk.paper_id, chunk.page) in evidence)
            ranked.append((-support, dist, chunk))
        ranked.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in ranked[:k]]

    def chunk_count(self) -> int:
        return self._collection(CHUNKS_COLLECTION).count() if self._papers else 0

    # ------------------------------------------------------------------ ingestion
    def ingest(self, paths: Sequence[str | Path], extractor=None,
               progress: Callable[[Path, float, str], None] | None = None, **limits: int):
        """Ingest PDFs (files, directories, globs); see ``knowledge.ingest.ingest``."""
        from archlore.knowledge.ingest import ingest

        return ingest(self, paths, extractor=extractor, progress=progress, **limits)

    def close(self) -> None:
        self.embedder.close()


def _idea_metadata(idea: Idea) -> dict[str, Any]:
    papers = sorted({p.paper_id for p in idea.provenance})
    return {"category": idea.category.value, "name": idea.name, "source": idea.source,
            "papers": ",".join(papers), "n_provenance": len(idea.provenance),
            "applicable_offline": idea.applicable_offline}
