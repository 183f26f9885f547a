"""The knowledge store: ideas, papers and paper chunks under one directory.

Layout of ``path`` (the data directory's ``knowledge/``):
- ``store.sqlite``: SQLite (WAL) with tables ``meta``, ``ideas`` (one JSON row per idea, in
  insertion order), ``papers`` (keyed by sha256, with content hash and arXiv id for
  content-level dedup) and ``chunks`` (text, page, section, appendix flag, MiniLM vector)
- ``embeddings.sqlite``: embedding cache keyed by text hash

Several processes may write at once (two ``archlore ingest`` into one store): every paper is one
``BEGIN IMMEDIATE`` transaction that first re-reads what other processes committed, so no
writer's papers are lost and a paper ingested twice concurrently is stored once. Readers notice
other processes' commits (``PRAGMA data_version``) and reload.

Listing and semantic search run in memory (ideas: a dict plus a (n, 384) matrix; chunks: a
(m, 384) matrix loaded on first chunk query), so the search loop never waits on disk. A store of
the previous version (``ideas.json`` / ``papers.json`` + ``chroma/``) is migrated on open; the
old files are kept, renamed ``*.migrated``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from archlore.knowledge.embed import CachedEmbedder, Embedder, default_embedder
from archlore.knowledge.legacy import legacy_chunks, read_legacy
from archlore.knowledge.merge import DuplicateIndex, idea_text, matvec, merge_into
from archlore.knowledge.schema import Category, Chunk, Idea, Paper

log = logging.getLogger(__name__)

DB_NAME = "store.sqlite"
_MARKERS = (DB_NAME, "ideas.json", "papers.json", "embeddings.sqlite", "chroma")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ideas (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
                                  json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS papers (sha256 TEXT PRIMARY KEY, id TEXT NOT NULL,
                                   content_sha256 TEXT, arxiv_id TEXT, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS papers_content ON papers(content_sha256);
CREATE INDEX IF NOT EXISTS papers_id ON papers(id);
CREATE TABLE IF NOT EXISTS chunks (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
                                   paper_id TEXT NOT NULL, page INTEGER NOT NULL,
                                   section TEXT, appendix INTEGER, title TEXT, text TEXT NOT NULL,
                                   vec BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_paper ON chunks(paper_id);
"""


class StoreError(Exception):
    """The store cannot be opened or read; ``str(err)`` is one line naming the file."""


@dataclass
class Hit:
    idea: Idea
    score: float  # cosine similarity in [-1, 1]


@dataclass
class ChunkHit:
    chunk: Chunk
    score: float  # cosine similarity in [-1, 1]
    title: str = ""


@dataclass
class AddResult:
    new: list[str]  # ids of ideas added
    merged: list[str]  # ids of existing ideas that absorbed a near-duplicate
    duplicate_of: Paper | None = None  # commit_paper: the paper was already stored (same text)


def check_store_dir(path: Path) -> None:
    """Refuse a path that is a file, or a non-empty directory that is not an archlore store
    (``knowledge = "/etc"`` must not make archlore write there)."""
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a knowledge store directory")
    if path.is_dir():
        try:
            entries = [p.name for p in path.iterdir()]
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
        if entries and not any(m in entries for m in _MARKERS):
            raise StoreError(f"{path} is a non-empty directory that is not an archlore knowledge "
                             f"store; use an empty or new directory")


class KnowledgeStore:
    """Ideas + papers + chunks under ``path``; see the module docstring for the layout."""

    def __init__(self, path: str | Path, embedder: Embedder | None = None,
                 load_corpus: bool = True, timeout_s: float = 120.0) -> None:
        self.path = Path(path).expanduser()
        check_store_dir(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        fresh = not (self.path / DB_NAME).exists()
        legacy = fresh and ((self.path / "ideas.json").exists() or
                            (self.path / "papers.json").exists())
        legacy_data = read_legacy(self.path, StoreError) if legacy else None  # raises StoreError first
        try:
            self._db = sqlite3.connect(str(self.path / DB_NAME), timeout=timeout_s,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path / DB_NAME} is not a valid store database ({exc}); "
                             f"move it away") from None
        self.embedder = CachedEmbedder(embedder or default_embedder,  # loads on first use
                                       self.path / "embeddings.sqlite")
        self._index: DuplicateIndex | None = None  # built lazily (needs embeddings)
        self._ideas: dict[str, Idea] = {}
        self._papers: dict[str, Paper] = {}  # by sha256
        self._version: int | None = None
        self._chunk_cache: tuple[int, list[Chunk], list[str], np.ndarray] | None = None
        self._lock = threading.RLock()  # one connection, possibly used from several threads
        if legacy_data is not None:
            self._migrate(*legacy_data)
        self._refresh(force=True)
        if load_corpus:
            self.sync_corpus()

    # ------------------------------------------------------------------ persistence
    @contextmanager
    def _transaction(self):
        """One write transaction (exclusive across processes); memory re-read first."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._refresh(force=True)
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._refresh(force=True)  # memory back to what is on disk
                raise

    def _refresh(self, force: bool = False) -> None:
        """Reload ideas and papers when another connection committed since the last load."""
        with self._lock:
            self._reload(force)

    def _reload(self, force: bool) -> None:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if not force and version == self._version:
            return
        try:
            ideas = {}
            for (raw,) in self._db.execute("SELECT json FROM ideas ORDER BY seq"):
                idea = Idea.model_validate_json(raw)
                ideas[idea.id] = idea
            papers = {}
            for (raw,) in self._db.execute("SELECT json FROM papers ORDER BY rowid"):
                paper = Paper.model_validate_json(raw)
                papers[paper.sha256] = paper
        except ValueError as exc:
            raise StoreError(f"{self.path / DB_NAME} holds an invalid record "
                             f"({str(exc).splitlines()[0]})") from None
        self._index = None  # its idea objects are the old ones
        self._ideas, self._papers, self._version = ideas, papers, version

    def _meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _put_ideas(self, ideas: Sequence[Idea]) -> None:
        self._db.executemany(
            "INSERT INTO ideas (id, json) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET "
            "json=excluded.json", [(i.id, i.model_dump_json()) for i in ideas])

    def _put_paper(self, paper: Paper) -> None:
        self._db.execute("INSERT OR REPLACE INTO papers VALUES (?, ?, ?, ?, ?)",
                         (paper.sha256, paper.id, paper.content_sha256 or None,
                          paper.arxiv_id, paper.model_dump_json()))

    def _put_chunks(self, paper: Paper, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        self._db.executemany(
            "INSERT OR IGNORE INTO chunks (id, paper_id, page, section, appendix, title, text, "
            "vec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.id, c.paper_id, c.page, c.section, int(c.appendix), paper.title, c.text,
              vectors[i].tobytes()) for i, c in enumerate(chunks)])

    def _migrate(self, ideas: list[Idea], papers: list[Paper], meta: dict[str, Any]) -> None:
        """Import a previous-version store (JSON mirrors + chromadb chunks), keep the files."""
        chunks, vectors = legacy_chunks(self.path)
        with self._transaction():
            self._put_ideas(ideas)
            for paper in papers:
                self._put_paper(paper)
            by_id = {p.id: p for p in papers}
            for paper_id in {c.paper_id for c in chunks}:
                idx = [i for i, c in enumerate(chunks) if c.paper_id == paper_id]
                paper = by_id.get(paper_id) or Paper(id=paper_id, sha256="")
                self._put_chunks(paper, [chunks[i] for i in idx], vectors[idx])
            for key, value in meta.items():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
        for name in ("ideas.json", "papers.json"):
            old = self.path / name
            if old.exists():
                old.rename(old.with_name(name + ".migrated"))
        log.warning("archlore: migrated the knowledge store in %s to %s (%d ideas, %d papers, "
                    "%d chunks)", self.path, DB_NAME, len(ideas), len(papers), len(chunks))

    def _dup_index(self) -> DuplicateIndex:
        self._refresh()
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
        if self._meta("corpus_sha256") == digest:
            return 0
        with self._transaction():
            if self._meta("corpus_sha256") == digest:  # another process synced meanwhile
                return 0
            synced: list[Idea] = []
            for idea in corpus:
                old = self._ideas.get(idea.id)
                if old is not None:  # keep provenance gathered from ingested papers
                    # corpus citations carry no page/quote: old ones must not outlive a fix
                    extra = [p for p in old.provenance if p not in idea.provenance
                             and (p.page is not None or p.quote)]
                    idea = idea.model_copy(update={"provenance": list(idea.provenance) + extra})
                self._ideas[idea.id] = idea
                synced.append(idea)
            self._put_ideas(synced)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('corpus_sha256', ?)",
                             (digest,))
            self._index = None
        return len(corpus)

    # ------------------------------------------------------------------ ideas
    def ideas(self, category: Category | str | None = None) -> list[Idea]:
        """All ideas, or those of one category (in insertion order)."""
        self._refresh()
        if category is None:
            return list(self._ideas.values())
        cat = Category(category)
        return [i for i in self._ideas.values() if i.category == cat]

    def get(self, idea_id: str) -> Idea | None:
        self._refresh()
        return self._ideas.get(idea_id)

    def __len__(self) -> int:
        self._refresh()
        return len(self._ideas)

    def categories(self) -> list[Category]:
        """Categories that have at least one idea, in vocabulary order."""
        present = {i.category for i in self.ideas()}
        return [c for c in Category if c in present]

    def sample(self, n: int = 1, rng: random.Random | None = None,
               category: Category | str | None = None) -> list[Idea]:
        """``n`` ideas drawn fairly: a uniformly random non-empty category, then a uniformly
        random idea in it (FairNAD's balance over categories; ingested and built-in ideas are
        treated alike). With replacement."""
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
        if not ideas:
            return AddResult([], [])
        with self._transaction():
            return self._add_ideas(ideas, merge)

    def _add_ideas(self, ideas: list[Idea], merge: bool) -> AddResult:
        """Inside a transaction: merge into the freshest state and write what changed."""
        result = AddResult([], [])
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
        self._put_ideas(list(touched.values()))
        return result

    def search(self, query: str, k: int = 10,
               category: Category | str | None = None) -> list[Hit]:
        """The ``k`` ideas most similar to ``query`` (cosine of MiniLM vectors), best first."""
        index = self._dup_index()
        if not index.ideas or k <= 0:
            return []
        q = self.embedder.inner.embed([query])[0]  # queries skip the on-disk cache
        sims = matvec(index.matrix, q)
        if category is not None:
            sims = np.where(index.category_mask(Category(category)), sims, -np.inf)
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return [Hit(index.ideas[i], float(sims[i])) for i in top if np.isfinite(sims[i])]

    # ------------------------------------------------------------------ papers & chunks
    def papers(self) -> list[Paper]:
        self._refresh()
        return list(self._papers.values())

    def paper_by_sha256(self, sha256: str) -> Paper | None:
        self._refresh()
        return self._papers.get(sha256)

    def find_paper(self, sha256: str = "", content_sha256: str = "",
                   arxiv_id: str | None = None) -> Paper | None:
        """The stored paper with these bytes, this text, or this arXiv id (same paper)."""
        self._refresh()
        for p in self._papers.values():
            if (sha256 and p.sha256 == sha256) or (
                    content_sha256 and p.content_sha256 == content_sha256) or (
                    arxiv_id and (p.arxiv_id == arxiv_id or p.id == arxiv_id)):
                return p
        return None

    def commit_paper(self, paper: Paper, chunks: Sequence[Chunk], chunk_vectors: np.ndarray,
                     ideas: Sequence[Idea]) -> AddResult:
        """Write one fully-extracted paper — chunks, ideas and the paper record — in one
        transaction. If another process stored the same paper meanwhile (same bytes, text or
        arXiv id), nothing is written and ``duplicate_of`` names it. On any failure nothing of
        the paper is kept."""
        with self._transaction():
            dup = self.find_paper(paper.sha256, paper.content_sha256, paper.arxiv_id)
            if dup is not None:
                return AddResult([], [], duplicate_of=dup)
            self._put_chunks(paper, chunks, chunk_vectors)
            result = self._add_ideas(list(ideas), merge=True)
            paper.idea_ids = list(dict.fromkeys(result.new + result.merged))
            self._put_paper(paper)
            self._papers[paper.sha256] = paper
        return result

    def chunks(self, paper_id: str | None = None) -> list[Chunk]:
        """Stored chunks (of one paper), in insertion order."""
        sql = "SELECT id, paper_id, page, section, appendix, text FROM chunks"
        with self._lock:
            rows = self._db.execute(sql + (" WHERE paper_id=? ORDER BY rowid" if paper_id else
                                           " ORDER BY rowid"),
                                    (paper_id,) if paper_id else ()).fetchall()
        return [Chunk(id=r[0], paper_id=r[1], page=r[2], section=r[3] or "",
                      appendix=bool(r[4]), text=r[5]) for r in rows]

    def chunk_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def _chunk_matrix(self) -> tuple[list[Chunk], list[str], np.ndarray]:
        """All chunks with their titles and a (m, dim) matrix, reloaded when rows change."""
        with self._lock:
            return self._load_chunk_matrix()

    def _load_chunk_matrix(self) -> tuple[list[Chunk], list[str], np.ndarray]:
        marker = self._db.execute("SELECT COALESCE(MAX(rowid), 0) + COUNT(*) FROM chunks"
                                  ).fetchone()[0]
        if self._chunk_cache is None or self._chunk_cache[0] != marker:
            rows = self._db.execute("SELECT id, paper_id, page, section, appendix, text, title, "
                                    "vec FROM chunks ORDER BY rowid").fetchall()
            chunks = [Chunk(id=r[0], paper_id=r[1], page=r[2], section=r[3] or "",
                            appendix=bool(r[4]), text=r[5]) for r in rows]
            titles = [r[6] or "" for r in rows]
            mat = (np.frombuffer(b"".join(r[7] for r in rows), np.float32).reshape(len(rows), -1)
                   if rows else np.zeros((0, self.embedder.dim), np.float32))
            self._chunk_cache = (marker, chunks, titles, mat)
        return self._chunk_cache[1], self._chunk_cache[2], self._chunk_cache[3]

    def search_chunks(self, query: str | np.ndarray, k: int = 5,
                      paper_ids: Iterable[str] | None = None) -> list[ChunkHit]:
        """The ``k`` paper chunks most similar to ``query`` (text or vector), best first;
        optionally only from ``paper_ids``."""
        chunks, titles, mat = self._chunk_matrix()
        if not chunks or k <= 0:
            return []
        q = self.embedder.inner.embed([query])[0] if isinstance(query, str) else query
        sims = matvec(mat, np.asarray(q, np.float32))
        if paper_ids is not None:
            allowed = set(paper_ids)
            sims = np.where([c.paper_id in allowed for c in chunks], sims, -np.inf)
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return [ChunkHit(chunks[i], float(sims[i]), titles[i]) for i in top
                if np.isfinite(sims[i])]

    def chunks_for(self, idea_id: str, k: int = 3) -> list[Chunk]:
        """The ``k`` paper chunks that best support the idea: chunks holding one of its
        supporting quotes first, then chunks on a cited page, then the closest chunks of the
        papers its supporting provenance cites (of every ingested paper when none is)."""
        idea = self.get(idea_id)
        if idea is None:
            raise KeyError(f"no idea with id {idea_id!r}")
        if not self.papers() or k <= 0:
            return []
        support = idea.supporting()
        known = {p.id for p in self._papers.values()}
        cited = sorted({p.paper_id for p in support} & known)
        vec = self.embedder.embed([idea_text(idea)])[0]
        hits = self.search_chunks(vec, k=max(4 * k, 12), paper_ids=cited or None)
        evidence = {(p.paper_id, p.page) for p in support}
        quotes = [p.quote[:80] for p in support if p.quote]
        ranked = []
        for h in hits:
            flat = " ".join(h.chunk.text.split())
            score = 2 * any(q in flat for q in quotes) + ((h.chunk.paper_id, h.chunk.page)
                                                          in evidence)
            ranked.append((-score, -h.score, h.chunk))
        ranked.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in ranked[:k]]

    def supporting_chunks(self, idea_id: str, k: int = 3) -> list[Chunk]:
        """Like ``chunks_for`` but only from papers that support the idea (empty when no
        ingested paper does): what an LLM mutator should read to apply a paper-only idea."""
        idea = self.get(idea_id)
        if idea is None:
            raise KeyError(f"no idea with id {idea_id!r}")
        cited = {p.paper_id for p in idea.supporting()} & {p.id for p in self.papers()}
        return self.chunks_for(idea_id, k) if cited else []

    # ------------------------------------------------------------------ ingestion
    def ingest(self, paths: Sequence[str | Path], extractor=None,
               progress: Callable[[Path, float, str], None] | None = None, **limits: int):
        """Ingest PDFs (files, directories, globs); see ``knowledge.ingest.ingest``."""
        from archlore.knowledge.ingest import ingest

        return ingest(self, paths, extractor=extractor, progress=progress, **limits)

    def close(self) -> None:
        self.embedder.close()
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> KnowledgeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
