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

from archlore.knowledge.text import (  # noqa: E402
    authors_after_title,
    clean_pages,
    content_sha256,
    normalise_unicode,
    title_from_first_page,
)

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
    content_sha256: str = ""  # hash of the text alone: same paper in other bytes
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
        raw_pages = [_page_text(p) for p in reader.pages]
        large = _large_font_text(reader.pages[0])
        meta = reader.metadata
    except PdfError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError,
            RecursionError, IndexError, AssertionError) as exc:
        raise PdfError(f"corrupt or truncated PDF ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # pypdf raises a wide variety on damaged files
        raise PdfError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc

    pages = clean_pages(raw_pages)
    if sum(len(p.strip()) for p in pages) < MIN_TEXT_CHARS:
        raise PdfError("no text layer (image-only or blank PDF; OCR it first)")

    doc = PdfDocument(path=path, sha256=digest, pages=pages,
                      content_sha256=content_sha256(pages))
    meta_title = _meta(meta, "title")
    meta_author = _meta(meta, "author")
    meta_extra = " ".join(_meta(meta, k) for k in ("subject", "keywords"))
    first_title = title_from_first_page(pages[0], normalise_unicode(large))
    doc.title = _pick_title(_clean_title(meta_title), first_title) or _clean_title(path.stem)
    doc.arxiv_id = _find_arxiv_id(path.name, f"{meta_title} {meta_extra}", pages[0])
    if meta_author:
        doc.authors = [a.strip() for a in re.split(r",| and |;", meta_author) if a.strip()]
    else:
        doc.authors = authors_after_title(pages[0], first_title)
    doc.year = _find_year(pages[0], doc.arxiv_id)
    return doc


def _meta(meta, key: str) -> str:
    if meta is None:
        return ""
    try:
        value = meta.get(f"/{key.capitalize()}")
    except Exception:
        return ""
    return normalise_unicode(" ".join(str(value).split())) if value else ""


def _pick_title(meta_title: str, first_title: str) -> str:
    """Metadata titles are often junk ("main.tex", "Slide 1", a conference header); trust one
    only when page 1 shows nothing better or page 1 starts with it."""
    if meta_title and (not first_title or _HEADER_TITLE.search(first_title) is None and
                       meta_title.lower()[:20] in " ".join(first_title.lower().split())):
        return meta_title
    if meta_title and _HEADER_TITLE.search(meta_title) is None and not first_title:
        return meta_title
    return first_title or meta_title


_HEADER_TITLE = re.compile(r"under review|conference paper|proceedings|preprint", re.I)


def _large_font_text(page) -> str:
    """Text of page 1 set in a font larger than the body text (the title), via pypdf's text
    visitor; '' when the page gives no font sizes."""
    runs: list[tuple[float, str]] = []

    def visit(text, cm, tm, font_dict, font_size):
        text = text.strip()
        if text:
            try:
                size = abs(float(tm[3]) * float(cm[3])) * float(font_size or 1)
            except (TypeError, ValueError, IndexError):
                return
            runs.append((round(size, 1), text))

    try:
        page.extract_text(visitor_text=visit)
    except Exception:
        return ""
    if not runs:
        return ""
    by_size: dict[float, int] = {}
    for size, text in runs:
        by_size[size] = by_size.get(size, 0) + len(text)
    body = max(by_size, key=by_size.__getitem__)
    runs = [(s, t) for s, t in runs if "arxiv" not in t.lower()  # the margin stamp
            and not any(ord(c) < 32 for c in t) and any(c.isalnum() for c in t)]  # no glyphs
    sizes = [s for s, _ in runs if s >= body * 1.2]
    if not sizes:
        return ""
    top = max(sizes)  # the title; small caps set part of it at ~0.8 of that size
    return " ".join(t for s, t in runs if s >= max(body * 1.2, top * 0.78))


def _page_text(page) -> str:
    try:
        return page.extract_text() or ""
    except Exception:  # one damaged page must not lose the others
        return ""


def _clean_title(title: str) -> str:
    title = " ".join(normalise_unicode(title).split())
    if (not title or title.lower() in {"untitled", "microsoft word", "title"}
            or title.lower().startswith(("microsoft word -", "slide ")) or _HEADER_TITLE.search(title)
            or title.endswith((".dvi", ".tex", ".doc", ".docx", ".pdf"))):
        return ""
    return title[:300]


def _find_arxiv_id(filename: str, meta_title: str, first_page: str) -> str | None:
    """New-style arXiv ids (``2301.01234``) from the file name, then metadata, then page 1."""
    # A bare "2301.01234" counts only in the file name; inside text it needs an "arXiv" prefix
    # (the stamp "arXiv:2101.03697v1 [cs.CV]" often comes out at the END of page 1's text).
    for text, bare_ok in ((filename, True), (meta_title, False), (first_page, False)):
        m = re.search(r"arxiv(?:\.org/abs/|[:\s/.]*)(\d{4}\.\d{4,5})", text, re.IGNORECASE)
        if m is None and bare_ok:
            m = _NEW_ARXIV.search(text)
        if m is None:
            m = _OLD_ARXIV.search(text)
        if m:
            return m.group(1)
    return None


_OLD_ARXIV = re.compile(r"arxiv:\s*((?:cs|math|stat|physics|q-bio|eess)(?:\.[A-Z]{2})?/\d{7})",
                        re.IGNORECASE)


def _find_year(first_page: str, arxiv_id: str | None) -> int | None:
    if arxiv_id and re.fullmatch(r"\d{4}\.\d{4,5}", arxiv_id):
        return 2000 + int(arxiv_id[:2])
    m = re.search(r"\b(19[89]\d|20[0-4]\d)\b", first_page[:3000])
    return int(m.group(1)) if m else None
