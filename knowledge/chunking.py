"""Section-aware chunking of per-page paper text.

Pages are first cut into *segments* at section headings ("3 Method", "4.2 Ablations",
"References"), so each segment has one page and one section; reference / bibliography
sections are dropped (they are long, name every idea in passing, and are not evidence).
Segments are then split with langchain's ``RecursiveCharacterTextSplitter`` into chunks of
about ``chunk_size`` characters, each keeping its page number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archlore.knowledge.schema import Chunk

CHUNK_SIZE = 1100  # characters; ~240 MiniLM tokens, under its 256-token window
CHUNK_OVERLAP = 120

_NUMBERED = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2}){0,2}\.?|[A-H](?:\.\d{1,2}){0,2}\.?|[IVX]{1,4}\.)\s+"
                       r"([A-Z][A-Za-z0-9 ,:&/\-()']{2,70})$")
_KNOWN = re.compile(
    r"^(abstract|introduction|related work|background|method(?:s|ology)?|approach|experiments?|"
    r"results|discussion|conclusions?|limitations|acknowledge?ments?|references|bibliography|"
    r"appendix(?:\s+[a-z])?|supplementary(?: material)?)\s*$", re.IGNORECASE)
_REFERENCES = re.compile(r"\b(references|bibliography|works cited)\b", re.IGNORECASE)
_AFTER_REFS = re.compile(r"\b(appendix|supplementary)\b", re.IGNORECASE)
_ACK = re.compile(r"acknowledge?ments?", re.IGNORECASE)
_APPENDIX_NAME = re.compile(r"^(?:[A-H](?:\.\d{1,2}){0,2}\.?\s|appendix|supplement)", re.IGNORECASE)
# what a line of a reference list looks like: a [n] / n. marker, a year, a venue, "et al."
_REF_LINE = re.compile(
    r"^\s*(?:\[\d{1,3}\]|\d{1,3}\.\s)|\b(?:19[5-9]\d|20[0-4]\d)[a-z]?\b|\bet al\b|"
    r"\b(?:In (?:Proc|Advances|International|European|IEEE|CVPR|ICCV|ECCV)|Proceedings|arXiv|"
    r"preprint|Conference|Journal|Transactions|CVPR|ICCV|ECCV|NeurIPS|NIPS|ICLR|ICML|AAAI|"
    r"IJCAI|BMVC|pp\.|pages \d)", re.IGNORECASE)


@dataclass
class Segment:
    """Text of one page inside one section."""

    page: int  # 1-based
    section: str
    text: str
    appendix: bool = False  # after the reference list (appendix / supplementary material)


def looks_like_references(text: str) -> bool:
    """True when most lines of ``text`` look like reference-list entries."""
    lines = [ln for ln in text.splitlines() if len(ln.strip()) > 3]
    if len(lines) < 3:
        return True  # a page tail of a few lines: stay where we are
    hits = sum(bool(_REF_LINE.search(ln)) for ln in lines)
    return hits >= 0.3 * len(lines)


def heading_of(line: str) -> str | None:
    """The section name if ``line`` looks like a heading, else None."""
    line = " ".join(line.split())
    if not line or len(line) > 80:
        return None
    if _KNOWN.match(line):
        return line
    m = _NUMBERED.match(line)
    if m and not line.rstrip().endswith(".") and sum(c.isdigit() for c in m.group(1)) < 4:
        words = m.group(1).split()
        lower = sum(w[:1].islower() for w in words)
        if len(words) >= 6 and lower > 0.6 * len(words):
            return None  # a sentence that starts after a line break ("2.4. The baselines are")
        return line
    return None


def segment_pages(pages: list[str]) -> list[Segment]:
    """Cut pages at headings; drop reference / bibliography (and acknowledgement) sections.

    A references section ends at an appendix / supplementary heading (``Appendix``, ``A.
    Details``), or at a page that does not look like a reference list: appendices are often
    not headed "Appendix" at all. Everything after the references is kept, labelled
    ``appendix=True`` (its section name defaults to "Appendix").
    """
    segments: list[Segment] = []
    section = ""
    in_refs = False  # sticky until an appendix heading or a page of non-reference text
    in_ack = False  # until the next heading
    after_refs = False
    for page_no, text in enumerate(pages, start=1):
        if in_refs and not looks_like_references(text):
            in_refs, after_refs = False, True
            section = "Appendix"
        buf: list[str] = []
        for line in [*text.splitlines(), None]:  # None: end of page, flush
            name = heading_of(line) if line is not None else None
            leaves_refs = name is not None and (_AFTER_REFS.search(name) is not None or (
                _APPENDIX_NAME.match(name) is not None and not _REF_LINE.search(name)))
            if line is not None and (name is None or (in_refs and not leaves_refs)):
                buf.append(line)
                continue
            body = "\n".join(buf).strip()
            if body and not (in_refs or in_ack):
                segments.append(Segment(page_no, section, body, appendix=after_refs))
            buf = []
            if line is None:
                break
            if in_refs and leaves_refs:
                after_refs = True
            section = name or section
            in_refs = bool(_REFERENCES.search(section)) and not leaves_refs
            in_ack = bool(_ACK.search(section))
            buf.append(line)
    return segments


def chunk_segments(paper_id: str, segments: list[Segment], chunk_size: int = CHUNK_SIZE,
                   chunk_overlap: int = CHUNK_OVERLAP) -> list[Chunk]:
    """Split segments into ``Chunk``s (one page each, ids stable in paper id + page + text)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap,
        separators=["\n\n", "\n", ". ", " ", ""])
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for seg in segments:
        for piece in splitter.split_text(seg.text):
            piece = piece.strip()
            if len(piece) < 40:  # headers, page numbers, stray captions
                continue
            cid = Chunk.make_id(paper_id, seg.page, piece)
            if cid in seen:
                continue
            seen.add(cid)
            chunks.append(Chunk(id=cid, paper_id=paper_id, page=seg.page, section=seg.section,
                                text=piece, appendix=seg.appendix))
    return chunks
