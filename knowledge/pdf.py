"""Read a PDF into per-page text plus its identity (sha256, title, arXiv id).

Every way a file can be unusable raises ``PdfError`` with one line that says why, so the
ingestion batch can report it and go on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_BYTES = 100 * 1024 * 1024  # larger files are refused rather than read into memory
MAX_PAGES = 400  # beyond this it is a book or a proceedings volume, not a paper
MIN_TEXT_CHARS = 200  # below this (over all pages) there is no usable text layer

_NEW_ARXIV = re.compile(r"\b(\d{4}\.\d{4,5})(?:v\d+)?\b")


class PdfError(Exception):
    """A file that cannot be ingested; ``str(err)`` is a one-line reason."""


@dataclass
class PdfDocument:
    path: Path
    sha256: str
    pages: list[str]  # page i+1's text
    title: str = ""
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    year: int | None = None

    @property
    def paper_id(self) -> str:
        """arXiv id when found, else ``sha256:<first 16 hex>``."""
        return self.arxiv_id or f"sha256:{self.sha256[:16]}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_pdf(path: Path, max_bytes: int = MAX_BYTES, max_pages: int = MAX_PAGES) -> PdfDocument:
    """Extract text per page; raise ``PdfError`` for non-PDF, corrupt, truncated, encrypted,
    empty, image-only or oversized files."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PdfError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise PdfError("empty file (0 bytes)")
    if size > max_bytes:
        raise PdfError(f"too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB limit)")
    with open(path, "rb") as f:
        head = f.read(1024)
    if b"%PDF-" not in head:
        raise PdfError("not a PDF (no %PDF- header)")
    digest = sha256_file(path)

    # pypdf logs recoverable problems as warnings; keep them out of the user's terminal.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:
                raise PdfError(f"encrypted PDF (cannot decrypt: {exc})") from exc
            if not ok:
                raise PdfError("encrypted PDF (password required)")
        n_pages = len(reader.pages)
        if n_pages == 0:
            raise PdfError("PDF has no pages")
        if n_pages > max_pages:
            raise PdfError(f"too many pages ({n_pages} > {max_pages} limit)")
        pages = [_page_text(p) for p in reader.pages]
        meta = reader.metadata
    except PdfError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError,
            RecursionError, IndexError, AssertionError) as exc:
        raise PdfError(f"corrupt or truncated PDF ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # pypdf raises a wide variety on damaged files
        raise PdfError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc

    if sum(len(p.strip()) for p in pages) < MIN_TEXT_CHARS:
        raise PdfError("no text layer (image-only or blank PDF; OCR it first)")

    doc = PdfDocument(path=path, sha256=digest, pages=pages)
    meta_title = str(meta.title).strip() if meta is not None and meta.title else ""
    meta_author = str(meta.author).strip() if meta is not None and meta.author else ""
    doc.title = _clean_title(meta_title) or _title_from_first_page(pages[0]) or path.stem
    doc.arxiv_id = _find_arxiv_id(path.name, meta_title, pages[0])
    if meta_author:
        doc.authors = [a.strip() for a in re.split(r",| and |;", meta_author) if a.strip()]
    doc.year = _find_year(pages[0], doc.arxiv_id)
    return doc


def _page_text(page) -> str:
    try:
        return page.extract_text() or ""
    except Exception:  # one damaged page must not lose the others
        return ""


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title or title.lower() in {"untitled", "microsoft word", "title"} or title.endswith(
            (".dvi", ".tex", ".doc", ".docx")):
        return ""
    return title


def _title_from_first_page(first: str) -> str:
    """The first substantial line of page 1 that is not an arXiv stamp or a header."""
    for line in first.splitlines()[:15]:
        line = " ".join(line.split())
        if len(line) < 8 or len(line) > 200 or "arxiv" in line.lower():
            continue
        if sum(c.isalpha() for c in line) < 0.6 * len(line):
            continue
        return line
    return ""


def _find_arxiv_id(filename: str, meta_title: str, first_page: str) -> str | None:
    """New-style arXiv ids (``2301.01234``) from the file name, then metadata, then page 1."""
    # A bare "2301.01234" counts only in the file name; inside text it needs an "arXiv" prefix.
    for text, bare_ok in ((filename, True), (meta_title, False), (first_page[:3000], False)):
        m = re.search(r"arxiv[:\s/]*(\d{4}\.\d{4,5})", text, re.IGNORECASE)
        if m is None and bare_ok:
            m = _NEW_ARXIV.search(text)
        if m:
            return m.group(1)
    return None


def _find_year(first_page: str, arxiv_id: str | None) -> int | None:
    if arxiv_id and re.fullmatch(r"\d{4}\.\d{4,5}", arxiv_id):
        return 2000 + int(arxiv_id[:2])
    m = re.search(r"\b(19[89]\d|20[0-4]\d)\b", first_page[:3000])
    return int(m.group(1)) if m else None
