"""Offline idea extraction: no LLM; what the paper proposes or uses, not what it mentions.

Two sources of ideas, both decided sentence by sentence (``knowledge.contrib``):

1. **Known concepts** (``knowledge.lexicon``): a concept becomes an idea only where the paper
   *uses* it — in its own method, abstract or captions, in the first person or about its own
   model — never from related work, comparisons, citations of other work, negations
   ("without normalization") or negative results ("width scaling is ineffective"). Training
   recipes (schedules, weight decay, augmentation) count only when the paper presents them as
   its contribution, not from its experimental setup. Fields (edits, effect) come from the
   lexicon, so these ideas merge into the built-in corpus and the offline mutator applies them.
2. **New contributions**: named modules / blocks / operations / strategies the paper itself
   introduces (contribution statements, "called X", run-in heads and method headings, numbered
   design strategies, own-design removals). They become new ideas with the paper's own
   sentences as description and evidence, a category from their name, and no structured edit
   (``apply_note`` says why: an LLM mutator applies them from the description and chunks).

Quotes are whole sentences (not table dumps or figure labels) that show the use, verbatim with
their page; reported numbers in them ("+1.2% top-1", "50x fewer parameters") go to
``effect.reported``.
"""

from __future__ import annotations

import re
from collections import defaultdict

from archlore.knowledge.contrib import (
    DESIGN_VERB,
    Candidate,
    Sentence,
    analyse,
    candidates,
    concept_use,
    content_words,
    heading_names,
    model_names,
    name_key,
    negated,
)
from archlore.knowledge.extract_base import PaperText, slugify
from archlore.knowledge.lexicon import CONCEPTS, Concept
from archlore.knowledge.schema import ArchEdit, Category, Direction, Effect, Idea, Provenance

_NUMBER = re.compile(
    r"(?:[+\-−]\s?\d+(?:\.\d+)?\s?%|\bby\s+\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?\s?%\s+(?:top-[15]|"
    r"accuracy|error|fewer|less|more|lower|higher|reduction|improvement|of (?:the )?(?:FLOPs|MACs|"
    r"parameters))|\d+(?:\.\d+)?\s?[x×]\s+(?:fewer|less|faster|smaller))"
    r"(?:\s+(?:top-[15]|accuracy|error|FLOPs|MACs|parameters|params|mAP))?",
    re.IGNORECASE)
MAX_QUOTE = 400  # characters; a longer evidence sentence is cut at a word boundary
USE_THRESHOLD = 3.5  # best sentence score for a known concept to count as used
NO_EDIT_NOTE = ("no structured edit: the open space's grammar has no field for this idea; an "
                "LLM mutator can apply it from the description and the paper's chunks")

_CATEGORY_RULES: tuple[tuple[Category, re.Pattern[str]], ...] = (
    (Category.ATTENTION, re.compile(r"attention|excitation|gat(?:e|ing)|recalibrat", re.I)),
    (Category.NORMALIZATION, re.compile(r"normali[sz]|batch ?norm|\bBN\b|whiten", re.I)),
    (Category.ACTIVATION, re.compile(r"\brelu|activation function|non-?linearit|gelu|swish|"
                                     r"\bactivation\b", re.I)),
    (Category.DOWNSAMPLING, re.compile(r"downsampl|down-sampl|subsampl|stride|pooling", re.I)),
    (Category.CONNECTIVITY, re.compile(r"bypass|shortcut|skip|residual|dense connect|"
                                       r"concatenat", re.I)),
    (Category.REGULARIZATION, re.compile(r"dropout|regulari|drop ?path|drop ?block", re.I)),
    (Category.BLOCK_TYPE, re.compile(r"re-?parameteri", re.I)),
    (Category.SCALING, re.compile(r"width|depth multiplier|multiplier|scaling|wider|deeper",
                                  re.I)),
    (Category.STAGE_LAYOUT, re.compile(r"\bstages?\b|\bstem\b|layout|macro|\bhead\b", re.I)),
    (Category.TRAINING, re.compile(r"train|schedule|optimi[sz]|learning rate|augment|loss|"
                                   r"initiali[sz]|distill", re.I)),
)


def category_of(name: str) -> Category:
    for cat, rx in _CATEGORY_RULES:
        if rx.search(name):
            return cat
    return Category.BLOCK_TYPE


def _applies_to(cat: Category) -> list[str]:
    return {Category.STAGE_LAYOUT: ["stage"], Category.DOWNSAMPLING: ["stage"],
            Category.SCALING: ["stage"], Category.TRAINING: ["training"]}.get(cat, ["block"])


class OfflineExtractor:
    """Contribution-aware offline extractor; ``max_evidence`` quotes per idea, distinct pages
    preferred."""

    name = "offline"

    def __init__(self, concepts: tuple[Concept, ...] = CONCEPTS, max_evidence: int = 2,
                 new_ideas: bool = True) -> None:
        self.concepts = concepts
        self.max_evidence = max_evidence
        self.new_ideas = new_ideas

    def extract(self, paper: PaperText) -> list[Idea]:
        sents = analyse(paper.segments, paper.title)
        title_s = Sentence(text=paper.title, page=1, section="", kind="front", contribution=True)
        known = self._known(sents, title_s)
        ideas = [self._known_idea(c, paper, ev) for c, ev in known]
        if self.new_ideas:
            taken = {i.id for i in ideas}
            for idea in self._new(sents, paper):
                if idea.id not in taken:
                    ideas.append(idea)
                    taken.add(idea.id)
        return ideas

    # -------------------------------------------------------------- known concepts
    def _known(self, sents: list[Sentence], title_s: Sentence
               ) -> list[tuple[Concept, list[tuple[float, Sentence]]]]:
        uses: dict[str, list[tuple[float, Sentence]]] = defaultdict(list)
        negations: dict[str, int] = defaultdict(int)
        order: list[str] = []
        for s in [title_s, *sents]:
            for concept in self.concepts:
                m = concept.regex.search(s.text)
                if m is None:
                    continue
                if s is title_s:
                    score = 5.0  # the title names it: the paper is about it
                else:
                    score = concept_use(s, m, training=concept.category == Category.TRAINING
                                        or "training" in concept.applies_to)
                if score is None:
                    if negated(s.text, m.start()) and s.own:
                        negations[concept.id] += 1
                    continue
                if concept.id not in uses:
                    order.append(concept.id)
                uses[concept.id].append((score, s))
        by_id = {c.id: c for c in self.concepts}
        out = []
        for cid in order:
            ev = uses[cid]
            best = max(score for score, _ in ev)
            strong = sum(score >= USE_THRESHOLD for score, _ in ev)
            if best < USE_THRESHOLD or negations[cid] > strong:
                continue
            if not any(s.quotable for _, s in ev):
                continue
            out.append((by_id[cid], ev))
        return out

    def _evidence(self, ev: list[tuple[float, Sentence]]) -> list[Sentence]:
        ranked = sorted((e for e in ev if e[1].quotable and e[1].kind != "front"
                         or e[1].quotable and e[1].page >= 1 and e[1].section),
                        key=lambda e: (-e[0] - 0.5 * bool(_NUMBER.search(e[1].text))
                                       - 1.0 * _defines(e[1].text)
                                       - 1.0 * bool(DESIGN_VERB.search(e[1].text))
                                       + 1.0 * (e[1].kind == "experiment")
                                       + 1.5 * _enumeration(e[1].text), e[1].page))
        if not ranked:
            ranked = sorted((e for e in ev if e[1].quotable), key=lambda e: (-e[0], e[1].page))
        best: list[Sentence] = []
        for _, s in ranked:
            if s.text in {b.text for b in best} or any(b.page == s.page for b in best):
                continue
            best.append(s)
            if len(best) >= self.max_evidence:
                break
        if len(best) < self.max_evidence:  # same page is fine when nothing else supports it
            for _, s in ranked:
                if s not in best and len(best) < self.max_evidence:
                    best.append(s)
        return sorted(best, key=lambda s: s.page)

    def _known_idea(self, concept: Concept, paper: PaperText,
                    ev: list[tuple[float, Sentence]]) -> Idea:
        best = self._evidence([e for e in ev if e[1].page >= 1 and e[1].text != paper.title]
                              or ev)
        acc, macs, params = concept.effect
        return Idea(
            id=concept.id, name=concept.name, category=concept.category,
            description=concept.description, operator=concept.operator,
            kernel_sizes=list(concept.kernel_sizes), ratios=dict(concept.ratios),
            applies_to=list(concept.applies_to),  # type: ignore[arg-type]
            effect=Effect(accuracy=acc, macs=macs, params=params, reported=_reported(best)),
            conflicts_with=list(concept.conflicts_with), code_hint=concept.code_hint,
            edits=[ArchEdit(**e) for e in concept.edits],
            cell_ops=list(concept.cell_ops),  # type: ignore[arg-type]
            provenance=_provenance(paper, best), source="offline",
            apply_note="" if concept.edits or concept.cell_ops else (
                "no structured edit: a training-recipe or layout idea the open space does not "
                "express; an LLM mutator can apply it"),
        )

    # -------------------------------------------------------------- new contributions
    def _new(self, sents: list[Sentence], paper: PaperText) -> list[Idea]:
        names = model_names(paper.title)
        cands = candidates(sents, names)
        sections = list(dict.fromkeys((s.section, s.kind) for s in sents))  # inherited kinds
        by_key = {name_key(c.name): c for c in cands}
        for h in heading_names(sections):
            key = name_key(h)
            by_key.setdefault(key, Candidate(h, "heading"))
            cands = list(by_key.values())
        index = {id(s): i for i, s in enumerate(sents)}
        ideas = []
        for cand in cands:
            if _is_known(cand.name, self.concepts):
                continue  # a known concept under its usual name: handled above
            if cand.how == "caption" and _is_known(cand.name.split(" with ", 1)[-1],
                                                    self.concepts):
                continue  # "X unit with group convolution": that is the known concept
            if _cited(cand.name, sents):
                continue  # someone else's named method ("Winograd algorithm [18]")
            evidence = _mentions(cand, sents)
            own = [s for s in evidence if s.own or s.kind in ("method", "abstract", "front")]
            strong = cand.how in ("strategy", "heading", "removal", "named", "contribution",
                                  "caption")
            if not own or (len(own) < 2 and not strong):
                continue
            quotable = [s for s in own if s.quotable]
            if not quotable:
                continue
            ranked = sorted(quotable, key=lambda s: (
                -(s in cand.sentences) * (-1 if cand.how == "caption" else 1) - s.contribution
                + 1.5 * _enumeration(s.text)
                - 0.5 * _defines(s.text)
                - 0.5 * (s.kind == "method") + 0.5 * (s.kind == "experiment"), s.page))
            best: list[Sentence] = []
            for s in ranked:
                if s.text not in {b.text for b in best}:
                    best.append(s)
                if len(best) >= self.max_evidence:
                    break
            best.sort(key=lambda s: s.page)
            name = cand.name[0].upper() + cand.name[1:]
            cat = category_of(name)
            description = _definition(ranked[0], sents, index,
                                      n={"removal": 1, "strategy": 2}.get(cand.how, 3))
            ideas.append(Idea(
                id=slugify(name), name=name, category=cat,
                description=description, operator=name,
                applies_to=_applies_to(cat),  # type: ignore[arg-type]
                effect=Effect(accuracy=Direction.UNKNOWN, reported=_reported(best)),
                provenance=_provenance(paper, best), source="offline", apply_note=NO_EDIT_NOTE,
            ))
        return ideas


def _cited(name: str, sents: list[Sentence]) -> bool:
    """The name's leading proper noun is followed by a citation somewhere in the paper."""
    first = name.split()[0]
    if not first[:1].isupper() or first.isupper() or len(first) < 3:
        return False
    rx = re.compile(rf"\b{re.escape(first)}(?:\s+[\w\-]+){{0,2}}\s*(?:\[\d|\([A-Z][a-z]+,? "
                    r"(?:et al\.?,? )?\d{4})")
    return any(rx.search(s.text) for s in sents)


def _is_known(name: str, concepts: tuple[Concept, ...]) -> bool:
    """The name is (mostly) a lexicon concept's surface form: "channel shuffle operation" is
    the known concept; "No ReLU after depthwise convolution" is a new design choice."""
    letters = len(re.sub(r"[^a-z0-9]", "", name.lower())) or 1
    for c in concepts:
        m = c.regex.search(name)
        if m and len(re.sub(r"[^a-z0-9]", "", m.group(0).lower())) >= 0.6 * letters:
            return True
    return False


def _enumeration(text: str) -> bool:
    """A caption listing panels ("a) ... b) ... c) ..."): often merged with column text."""
    return len(re.findall(r"(?:^|\s)\(?[a-h]\)\s", text)) >= 2


def _defines(text: str) -> bool:
    return bool(re.search(r"\b(?:consists? of|comprises?|is composed of|we defined?|is defined|"
                          r"which means|is a|are a|refers to)\b", text, re.I))


def _mentions(cand: Candidate, sents: list[Sentence]) -> list[Sentence]:
    """Sentences naming the candidate (every content word of its name, any order), not
    negated, not in related work, not table dumps — plus the sentences it was found in."""
    if cand.how in ("strategy", "removal"):
        return list(cand.sentences)
    words = [w for w in content_words(cand.name) if len(w) >= 3 or w.isdigit()]
    words = [w for w in words if not w.isdigit()] or words
    if not words:
        return list(cand.sentences)
    rxs = [re.compile(r"\b" + re.escape(w) + r"(?:s|es|ed|d|ing|al|ly)?\b", re.I)
           for w in words]
    out = list(cand.sentences)
    for s in sents:
        if s in out or s.kind == "related" or s.table_like:
            continue
        hits = [rx.search(s.text) for rx in rxs]
        if all(hits) and not negated(s.text, min(h.start() for h in hits), span=40):
            out.append(s)
    return out


def _definition(first: Sentence, sents: list[Sentence], index: dict[int, int],
                n: int = 3) -> str:
    """``first`` and the sentences after it in the same section and page (the paragraph that
    defines the idea), up to ``n`` quotable ones."""
    i = index.get(id(first))
    parts = [_cut(first.text)]
    if i is not None:
        for s in sents[i + 1:i + 1 + 2 * n]:
            if len(parts) >= n or s.section != first.section or s.page != first.page:
                break
            if s.quotable and not s.caption:
                parts.append(_cut(s.text))
    return " ".join(parts)


def _provenance(paper: PaperText, best: list[Sentence]) -> list[Provenance]:
    return [Provenance(paper_id=paper.paper_id, title=paper.title, page=s.page,
                       quote=_cut(s.text), section=s.section[:80], role="supports")
            for s in best]


def _reported(best: list[Sentence]) -> str:
    return "; ".join(dict.fromkeys(m.group(0).strip() for s in best
                                   for m in _NUMBER.finditer(s.text)))


def _cut(sentence: str) -> str:
    if len(sentence) <= MAX_QUOTE:
        return sentence
    return sentence[:MAX_QUOTE].rsplit(" ", 1)[0]  # still a verbatim substring
