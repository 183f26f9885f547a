"""Offline idea extraction: no LLM, a lexicon of architectural concepts.

For every concept of ``knowledge.lexicon`` mentioned in the paper, one ``Idea`` whose fields come
from the lexicon (category, operator, expected effect, structured edits) and whose provenance is
the best evidence sentences, quoted verbatim with their page. Reported numbers in the evidence
("+1.2% top-1", "reduces FLOPs by 30%") go to ``effect.reported``.
"""

from __future__ import annotations

import re

from archlore.knowledge.extract_base import PaperText, sentences
from archlore.knowledge.lexicon import CONCEPTS, Concept
from archlore.knowledge.schema import ArchEdit, Effect, Idea, Provenance

_NUMBER = re.compile(
    r"(?:[+\-−]\s?\d+(?:\.\d+)?\s?%|\bby\s+\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?\s?%\s+(?:top-[15]|"
    r"accuracy|error|fewer|less|more|lower|higher|reduction|improvement|of (?:the )?(?:FLOPs|MACs|"
    r"parameters))|\d+(?:\.\d+)?\s?[x×]\s+(?:fewer|less|faster|smaller))"
    r"(?:\s+(?:top-[15]|accuracy|error|FLOPs|MACs|parameters|params|mAP))?",
    re.IGNORECASE)
_EFFECT_WORDS = re.compile(
    r"\b(improv\w*|outperform\w*|boost\w*|gain\w*|reduc\w*|increas\w*|better|fewer|lower|"
    r"higher|accura\w*|error)\b", re.IGNORECASE)
_WEAK_SECTIONS = re.compile(r"related work|background|introduction", re.IGNORECASE)
MAX_QUOTE = 400  # characters; a longer evidence sentence is cut at a word boundary


class OfflineExtractor:
    """Lexicon-based extractor; ``max_evidence`` quotes per idea, on distinct pages."""

    name = "offline"

    def __init__(self, concepts: tuple[Concept, ...] = CONCEPTS, max_evidence: int = 2) -> None:
        self.concepts = concepts
        self.max_evidence = max_evidence

    def extract(self, paper: PaperText) -> list[Idea]:
        # (score, page, sentence) per concept; score prefers numbers, effect words, own sections
        found: dict[str, list[tuple[float, int, str]]] = {}
        order: list[str] = []
        for seg in paper.segments:
            weak = bool(_WEAK_SECTIONS.search(seg.section))
            for sent in sentences(seg.text):
                if len(sent) < 20:
                    continue
                for concept in self.concepts:
                    if not concept.regex.search(sent):
                        continue
                    score = (2.0 * bool(_NUMBER.search(sent)) + bool(_EFFECT_WORDS.search(sent))
                             - 1.0 * weak - len(sent) / 2000)
                    if concept.id not in found:
                        order.append(concept.id)
                    found.setdefault(concept.id, []).append((score, seg.page, sent))
        by_id = {c.id: c for c in self.concepts}
        return [self._idea(by_id[cid], paper, found[cid]) for cid in order]

    def _idea(self, concept: Concept, paper: PaperText,
              evidence: list[tuple[float, int, str]]) -> Idea:
        best: list[tuple[float, int, str]] = []
        pages: set[int] = set()
        for item in sorted(evidence, key=lambda e: (-e[0], e[1])):
            if item[1] in pages:
                continue
            best.append(item)
            pages.add(item[1])
            if len(best) >= self.max_evidence:
                break
        best.sort(key=lambda e: e[1])
        reported = "; ".join(dict.fromkeys(
            m.group(0).strip() for _, _, s in best for m in _NUMBER.finditer(s)))
        acc, macs, params = concept.effect
        return Idea(
            id=concept.id,
            name=concept.name,
            category=concept.category,
            description=concept.description,
            operator=concept.operator,
            kernel_sizes=list(concept.kernel_sizes),
            ratios=dict(concept.ratios),
            applies_to=list(concept.applies_to),  # type: ignore[arg-type]
            effect=Effect(accuracy=acc, macs=macs, params=params, reported=reported),
            conflicts_with=list(concept.conflicts_with),
            code_hint=concept.code_hint,
            edits=[ArchEdit(**e) for e in concept.edits],
            cell_ops=list(concept.cell_ops),  # type: ignore[arg-type]
            provenance=[Provenance(paper_id=paper.paper_id, title=paper.title, page=page,
                                   quote=_cut(sent)) for _, page, sent in best],
            source="offline",
        )


def _cut(sentence: str) -> str:
    if len(sentence) <= MAX_QUOTE:
        return sentence
    return sentence[:MAX_QUOTE].rsplit(" ", 1)[0]  # still a verbatim substring
