"""Clean PDF text: Unicode normalisation, line-end hyphenation, paper identity from page 1.

pypdf hands back what the PDF's font maps say: ligature code points (``ﬁ``, ``ﬂ``), spacing
accents before their letter (``L´eon``), figure glyphs as control characters, and words broken
at line ends (``convo-\\nlutional``). ``clean_pages`` fixes those for every page of a document
at once, because undoing a line-end hyphen needs the document's vocabulary: ``multi-\\nbranch``
stays ``multi-branch`` when the paper writes "multi-branch" elsewhere, ``convo-\\nlutional``
becomes ``convolutional``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACING_ACCENT = {"´": "\u0301", "`": "\u0300", "¨": "\u0308", "˜": "\u0303", "ˆ": "\u0302",
                   "¸": "\u0327", "˚": "\u030a"}
_ACCENT_BEFORE = re.compile(r"([´`¨˜ˆ¸˚])\s?([A-Za-z])")
_LINE_HYPHEN = re.compile(r"([A-Za-z]+)-[ \t]*\n[ \t]*([a-z][A-Za-z]*)")
_WORD = re.compile(r"[A-Za-z][A-Za-z\-]*[A-Za-z]|[A-Za-z]")
_HYPHEN_PREFIXES = {"multi", "non", "pre", "post", "self", "cross", "inter", "intra", "semi",
                    "sub", "co", "re", "de", "anti", "over", "under", "well", "state", "end",
                    "high", "low", "two", "three", "one", "single", "fine", "coarse", "fully",
                    "light", "point", "depth", "channel", "group", "spatial", "training",
                    "inference", "test", "run", "real", "large", "small", "long", "short"}


def _accents(text: str) -> str:
    def fix(m: re.Match[str]) -> str:
        return unicodedata.normalize("NFC", m.group(2) + _SPACING_ACCENT[m.group(1)])

    return _ACCENT_BEFORE.sub(fix, text)


def normalise_unicode(text: str) -> str:
    """NFKC (ligatures, full-width forms, superscripts), composed accents, no control chars."""
    text = _accents(text)
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2010", "-").replace("\u2011", "-").replace("\u00ad", "")
    return _CONTROL.sub(" ", text)


def _vocabulary(pages: list[str]) -> tuple[Counter[str], Counter[str]]:
    """Words (lower case) as the document writes them inside lines: plain and hyphenated."""
    plain: Counter[str] = Counter()
    hyphenated: Counter[str] = Counter()
    for page in pages:
        for line in page.splitlines():
            for w in _WORD.findall(line.rstrip("-")):
                w = w.lower()
                (hyphenated if "-" in w else plain)[w] += 1
    return plain, hyphenated


def dehyphenate(pages: list[str]) -> list[str]:
    """Join words broken at line ends, keeping hyphens the document itself uses."""
    plain, hyphenated = _vocabulary(pages)

    def join(m: re.Match[str]) -> str:
        a, b = m.group(1), m.group(2)
        joined, kept = (a + b).lower(), f"{a}-{b}".lower()
        if hyphenated[kept] > plain[joined]:
            return f"{a}-{b}"
        if plain[joined] or not (a.lower() in _HYPHEN_PREFIXES and plain[b.lower()]):
            return a + b
        return f"{a}-{b}"

    return [_LINE_HYPHEN.sub(join, p) for p in pages]


def strip_running_lines(pages: list[str], edge: int = 2) -> list[str]:
    """Drop running headers / footers: a line (digits ignored) among the first or last
    ``edge`` lines of at least 3 pages and 30 % of them, at most 70 characters ("Woo, Park, Lee, Kweon 7", "Under
    review as a conference paper at ICLR 2017"). Page 1 keeps its lines (title detection
    skips headers itself)."""
    if len(pages) < 4:
        return pages

    def key(line: str) -> str:
        return re.sub(r"[\d\s]+", " ", line).strip().lower()

    counts: Counter[str] = Counter()
    for page in pages:
        lines = [ln for ln in page.splitlines() if ln.strip()]
        counts.update({key(ln) for ln in lines[:edge] + lines[-edge:] if 3 < len(key(ln)) <= 70})
    running = {k for k, n in counts.items() if n >= max(3, 0.3 * len(pages))}
    if not running:
        return pages
    out = [pages[0]]
    for page in pages[1:]:
        lines = page.splitlines()
        nonempty = [i for i, ln in enumerate(lines) if ln.strip()]
        edges = set(nonempty[:edge] + nonempty[-edge:])
        out.append("\n".join(ln for i, ln in enumerate(lines)
                             if not (i in edges and key(ln) in running)))
    return out


def clean_pages(pages: list[str]) -> list[str]:
    """Every page: Unicode-normalised, running headers/footers dropped, hyphenation at line
    ends undone (document vocabulary)."""
    return dehyphenate(strip_running_lines([normalise_unicode(p) for p in pages]))


def content_sha256(pages: list[str]) -> str:
    """Hash of the text alone (lower case, letters and digits): the same paper in other bytes
    (re-saved, re-encrypted, new metadata) has the same content hash."""
    h = hashlib.sha256()
    for p in pages:
        h.update(re.sub(r"[^a-z0-9]+", "", p.lower()).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- identity
_HEADER = re.compile(
    r"(under review|published as|conference paper|workshop paper|proceedings|preprint|"
    r"arxiv|accepted (?:at|to|by|for)|copyright|©|\bissn\b|\bdoi\b|journal of|transactions on|"
    r"vol\.|volume \d|pp\.|page \d|draft|technical report|^\d+$|https?://|www\.)",
    re.IGNORECASE)
_AFFILIATION = re.compile(
    r"(universit|institute|college|school|department|dept\.|laborator|\blab\b|research|inc\b|"
    r"inc\.|ltd|corporation|technolog|academy|centre|center|google|microsoft|facebook|meta ai|"
    r"deepmind|@|\{|\bemail\b|abstract)", re.IGNORECASE)
_AUTHOR_MARKS = re.compile(r"[*†‡§¶∗⋆]|[a-z]\s?\d{1,2}(?:,|\s|$)")
_NAME = re.compile(r"^[A-Z][a-zA-Z'\-]+(?:\s+(?:[A-Z]\.|[A-Z][a-zA-Z'\-]+|van|von|de|der|da))+$")


def _alpha_share(line: str) -> float:
    return sum(c.isalpha() for c in line) / max(1, len(line))


def _covered(line: str, large: Counter[str]) -> float:
    """Share of the line's letters that appear in the large-font text of the page."""
    letters = Counter(c for c in line.lower() if c.isalnum())
    if not letters:
        return 0.0
    return sum(min(n, large[c]) for c, n in letters.items()) / sum(letters.values())


def title_from_first_page(first: str, large_text: str = "") -> str:
    """The title: the first substantial non-header line of page 1, joined with the lines after
    it that are set in the title's (large) font, or — without font information — with one
    continuation line that is clearly part of it (no author or affiliation marks)."""
    lines = [" ".join(ln.split()) for ln in first.splitlines()[:20]]
    large = Counter(c for c in large_text.lower() if c.isalnum())
    start = None
    for i, line in enumerate(lines):
        if len(line) < 8 or len(line) > 200 or _HEADER.search(line) or _alpha_share(line) < 0.6:
            continue
        if large and _covered(line, large) < 0.8 and i < len(lines) - 1:
            continue  # body text before the title (e.g. a running header in a small font)
        start = i
        break
    if start is None:
        return ""
    parts = [lines[start]]
    for line in lines[start + 1:start + 4]:
        if (not line or _HEADER.search(line) or _AFFILIATION.search(line)
                or _AUTHOR_MARKS.search(line)):
            break
        if large:
            if _covered(line, large) < 0.8:
                break
        elif not (len(line) < 60 and line.isupper() == parts[0].isupper() and
                  not re.search(r"[\d*†‡∗,]", line[-3:]) and not parts[-1].endswith(".")):
            break
        parts.append(line)
    title = " ".join(parts)
    return title[:300]


def authors_after_title(first: str, title: str) -> list[str]:
    """Author names from the lines after the title (up to the affiliations / abstract)."""
    lines = [" ".join(ln.split()) for ln in first.splitlines()[:30]]
    flat_title = " ".join(title.split())
    idx = None
    joined = ""
    for i, line in enumerate(lines):
        joined = (joined + " " + line).strip() if idx is None and joined else line
        if flat_title and flat_title.endswith(line) and line:
            idx = i
            break
    if idx is None:
        return []
    names: list[str] = []
    for line in lines[idx + 1:idx + 5]:
        if not line or _AFFILIATION.search(line) or _HEADER.search(line):
            break
        line = re.sub(r"[*†‡§¶∗⋆]|\d+", ",", line)
        for part in re.split(r",|;|\band\b|\s{2,}", line):
            part = " ".join(part.split()).strip(" .")
            if not part:
                continue
            words = part.split()
            if len(words) >= 4 and len(words) % 2 == 0 and all(w[:1].isupper() for w in words):
                names += [" ".join(words[j:j + 2]) for j in range(0, len(words), 2)]
            elif _NAME.match(part) and len(words) <= 4:
                names.append(part)
        if len(names) >= 30:
            break
    return list(dict.fromkeys(names))
