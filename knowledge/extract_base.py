"""What an idea extractor is given and must return."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from archlore.knowledge.chunking import Segment
from archlore.knowledge.schema import Idea


class ExtractionError(Exception):
    """Extraction of one paper failed; ``str(err)`` is a one-line reason."""


@dataclass
class PaperText:
    """A paper's usable text: reference sections already removed."""

    paper_id: str
    title: str
    segments: list[Segment]

    def pages(self) -> dict[int, str]:
        """Page number -> that page's (kept) text."""
        out: dict[int, list[str]] = {}
        for seg in self.segments:
            out.setdefault(seg.page, []).append(seg.text)
        return {p: "\n".join(t) for p, t in out.items()}


class Extractor(Protocol):
    name: str

    def extract(self, paper: PaperText) -> list[Idea]:
        """All design ideas the paper supports, each with provenance into ``paper``."""
        ...


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[0-9])")


def normalise_text(text: str) -> str:
    """Collapse PDF line breaks and whitespace. (Line-end hyphenation is undone when the PDF is
    read, ``knowledge.text.dehyphenate``; a hyphen still before a line break is a real one.)"""
    text = re.sub(r"(\w)-\n(\w)", r"\1-\2", text)
    return " ".join(text.split())


_BULLET = re.compile(r"\s+(?=[•▪◦●] )|(?<=[.;:])\s+(?=\((?:[ivx]{1,4}|[a-h1-9])\)\s)")


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` (after ``normalise_text``); bullets and "(i) ..." items of an
    enumeration are sentences of their own. Every sentence is a verbatim substring."""
    out = []
    for part in _SENTENCE_END.split(normalise_text(text)):
        for piece in _BULLET.split(part):
            piece = piece.strip().lstrip("•▪◦● ").strip()
            if piece:
                out.append(piece)
    return out


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "idea"
