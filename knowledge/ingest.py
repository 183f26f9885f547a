"""Ingestion pipeline: PDFs -> pages -> sections/chunks -> ideas + embeddings -> store.

Per file: read (pypdf, text cleaned by ``knowledge.text``), skip it if the store already holds
the same paper (same sha256, same text, or same arXiv id), segment and chunk (references
dropped, appendices after them kept and labelled), extract ideas, embed chunks (batched, cached
by text hash), and only then write, in one transaction — so a file that fails at any step leaves
nothing in the store, and a paper another process stored meanwhile is skipped. One bad file
never stops the batch.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from archlore.knowledge.chunking import chunk_segments, segment_pages
from archlore.knowledge.extract_base import ExtractionError, Extractor, PaperText
from archlore.knowledge.pdf import MAX_BYTES, MAX_PAGES, PdfError, read_pdf
from archlore.knowledge.schema import Paper

if TYPE_CHECKING:
    from archlore.knowledge.store import KnowledgeStore

Progress = Callable[[Path, float, str], None]  # (file, fraction done in [0, 1], stage)


@dataclass
class FileResult:
    path: Path
    status: Literal["ingested", "skipped", "error"]
    paper_id: str = ""
    title: str = ""
    pages: int = 0
    chunks: int = 0
    ideas_new: int = 0
    ideas_merged: int = 0
    error: str = ""  # one line, for status == "error"; the reason for "skipped"
    warning: str = ""  # ingested, but e.g. every idea the extractor proposed was dropped
    seconds: float = 0.0


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)

    def _sum(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files if f.status == "ingested")

    @property
    def ingested(self) -> int:
        return sum(f.status == "ingested" for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.status == "skipped" for f in self.files)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "error"]

    @property
    def pages(self) -> int:
        return self._sum("pages")

    @property
    def chunks(self) -> int:
        return self._sum("chunks")

    @property
    def ideas_new(self) -> int:
        return self._sum("ideas_new")

    @property
    def ideas_merged(self) -> int:
        return self._sum("ideas_merged")

    @property
    def ok(self) -> bool:
        """False only when nothing was ingested or already present (the CLI's exit status)."""
        return self.ingested + self.skipped > 0


def expand_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Files, directories (every ``*.pdf`` below, recursively) and glob patterns -> files.

    Returns (files, errors for arguments that matched nothing). Order kept, duplicates dropped.
    """
    files: list[Path] = []
    errors: list[FileResult] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".pdf")
            if not found:
                errors.append(FileResult(p, "error", error="directory contains no .pdf files"))
            files.extend(found)
        elif p.exists():
            files.append(p)
        elif glob.has_magic(str(raw)):
            found = sorted(Path(q) for q in glob.glob(str(p), recursive=True) if Path(q).is_file())
            if not found:
                errors.append(FileResult(p, "error", error="glob matched no files"))
            files.extend(found)
        else:
            errors.append(FileResult(p, "error", error="no such file or directory"))
    unique = list(dict.fromkeys(f.resolve() for f in files))
    return unique, errors


def ingest(store: KnowledgeStore, paths: Sequence[str | Path], extractor: Extractor | None = None,
           progress: Progress | None = None, max_bytes: int = MAX_BYTES,
           max_pages: int = MAX_PAGES) -> IngestSummary:
    """Ingest every PDF in ``paths`` into ``store``; never raises for a bad file."""
    if extractor is None:
        from archlore.knowledge.extract_offline import OfflineExtractor

        extractor = OfflineExtractor()
    files, errors = expand_paths(paths)
    summary = IngestSummary(files=list(errors))
    for path in files:
        t0 = time.perf_counter()
        try:
            result = _ingest_one(store, path, extractor, progress, max_bytes, max_pages)
        except (PdfError, ExtractionError) as exc:
            result = FileResult(path, "error", error=str(exc))
        except Exception as exc:  # the batch continues whatever one file does
            result = FileResult(path, "error", error=f"{type(exc).__name__}: {exc}")
        result.seconds = time.perf_counter() - t0
        if progress:
            progress(path, 1.0, result.status)
        summary.files.append(result)
    return summary


def _ingest_one(store: KnowledgeStore, path: Path, extractor: Extractor,
                progress: Progress | None, max_bytes: int, max_pages: int) -> FileResult:
    def step(fraction: float, stage: str) -> None:
        if progress:
            progress(path, fraction, stage)

    step(0.0, "reading")
    doc = read_pdf(path, max_bytes=max_bytes, max_pages=max_pages)
    known = store.find_paper(doc.sha256, doc.content_sha256, doc.arxiv_id)
    if known is not None:
        return _skipped(path, known, doc)
    step(0.2, "chunking")
    segments = segment_pages(doc.pages)
    if not segments:
        raise PdfError("no usable text outside reference sections")
    chunks = chunk_segments(doc.paper_id, segments)
    step(0.3, f"extracting ideas ({extractor.name})")
    dropped_before = len(getattr(extractor, "dropped", []))
    ideas = extractor.extract(PaperText(doc.paper_id, doc.title, segments))
    dropped = list(getattr(extractor, "dropped", []))[dropped_before:]
    step(0.5, f"embedding {len(chunks)} chunks")
    vectors = store.embedder.embed([c.text for c in chunks])
    step(0.9, "writing")
    paper = Paper(id=doc.paper_id, title=doc.title, authors=doc.authors, year=doc.year,
                  pages=len(doc.pages), sha256=doc.sha256, path=str(path),
                  content_sha256=doc.content_sha256, arxiv_id=doc.arxiv_id)
    added = store.commit_paper(paper, chunks, vectors, ideas)
    if added.duplicate_of is not None:  # another process stored it while we extracted
        return _skipped(path, added.duplicate_of, doc)
    warning = ""
    if not ideas and dropped:  # the extractor proposed ideas but none kept verifiable evidence
        reasons: dict[str, int] = {}
        for _, why in dropped:
            reasons[why] = reasons.get(why, 0) + 1
        warning = (f"0 ideas kept of {len(dropped)} proposed: "
                   + "; ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
                   + " (the paper's text is stored and searchable)")
    return FileResult(path, "ingested", paper_id=paper.id, title=paper.title,
                      pages=paper.pages, chunks=len(chunks), ideas_new=len(added.new),
                      ideas_merged=len(added.merged), warning=warning)


def _skipped(path: Path, known: Paper, doc) -> FileResult:
    if known.sha256 == doc.sha256:
        why = "already ingested (same sha256)"
    elif known.content_sha256 and known.content_sha256 == doc.content_sha256:
        why = f"already ingested (same text as {known.id})"
    else:
        why = f"already ingested (same arXiv id {doc.arxiv_id})"
    return FileResult(path, "skipped", paper_id=known.id, title=known.title,
                      pages=known.pages, error=why)
