"""What a paper proposes or uses, versus what it only mentions: sentence roles for offline
extraction.

Every sentence gets a *section kind* (abstract, introduction, related work, method,
experiments, conclusion, appendix), and flags: written in the first person or about the paper's
own model, a contribution statement ("we propose / introduce / present ..."), a figure or table
caption, a table dump (mostly numbers), quotable (a whole sentence of words). On top of that:

- ``concept_use``: does this sentence show the paper *using* a concept the regex found, or only
  mention it (related work, a comparison, a citation of other work, a negation such as
  "without normalization" / "X is ineffective")? Returns a score, or None for a mention.
- ``candidates``: names of the paper's own contributions — noun phrases after contribution
  verbs ("we introduce the Fire module"), "called / named / termed X", run-in paragraph heads
  and method-section headings ("Spatial attention module."), numbered design strategies
  ("Strategy 3. Downsample late ..."), and own-design removals ("we do not use ReLU after
  depthwise convolution"). None of this is specific to a paper: the rules are general cues of
  scientific writing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from archlore.knowledge.chunking import Segment
from archlore.knowledge.extract_base import sentences

# ------------------------------------------------------------------ section kinds
_KINDS = (
    ("related", re.compile(r"related work|background|prior work|previous work|literature|"
                           r"preliminar", re.I)),
    ("abstract", re.compile(r"^\W*abstract", re.I)),
    ("intro", re.compile(r"introduction|motivation", re.I)),
    ("experiment", re.compile(r"experiment|evaluation|results|ablation|implementation detail|"
                              r"benchmark|comparison|training detail|setup|detection|"
                              r"segmentation|transfer", re.I)),
    ("conclusion", re.compile(r"conclusion|discussion|summary|future work|limitation", re.I)),
)


def section_kind(section: str, appendix: bool = False) -> str:
    if appendix:
        return "appendix"
    if not section:
        return "front"  # page 1 before any heading: title, authors, often the abstract
    for kind, rx in _KINDS:
        if rx.search(section):
            return kind
    return "method"


# ------------------------------------------------------------------ sentence flags
_FIRST_PERSON = re.compile(r"\b(?:we|our|ours|us)\b|\bthis (?:paper|work)\b|\bthe proposed\b|"
                           r"\bproposed (?:method|module|block|unit|architecture|network|model)",
                           re.I)
CONTRIB_VERB = (r"propos(?:e|es|ed|ing)|introduc(?:e|es|ed|ing)|present(?:s|ed|ing)?|"
                r"design(?:s|ed)?|devis(?:e|es|ed)|develop(?:s|ed)?|"
                r"build(?:s)?|built|construct(?:s|ed)?|formulat(?:e|es|ed)")
_AUX = r"(?:(?:also|first|further|then|here|now|therefore|thus|hence|newly|additionally|have|has|will|can|could|would|further|finally|next)\s+){0,2}"
_CONTRIB = re.compile(
    rf"\b(?:we|this (?:paper|work)|our (?:work|paper|method|approach))\s+{_AUX}"
    rf"(?:{CONTRIB_VERB})\b|\b(?:we|which we)\s+(?:call|name|term|dub)\b|"
    r"\bour (?:new|novel|proposed)\b|\bis (?:called|named|termed|dubbed)\b", re.I)
_CAPTION = re.compile(r"^(?:fig(?:ure)?|table|tab)\.?\s*\d+\s*[:.]", re.I)
_OTHER_WORK = re.compile(
    r"\bet al\.?,?\s*(?:\(\d{4}\w?\)|\[\d+\])?\s*(?:\w+ )?(?:propos|introduc|use|show|present|"
    r"adopt|employ|found|extend|demonstrat|develop|explor|stud)|\b(?:they|their|authors)\b|\b(?:previous|prior|existing|recent|earlier|popular|"
    r"conventional|traditional|state-of-the-art|other) (?:\w+ )?(?:work|method|approach|"
    r"architecture|network|model|design|stud)|\b(?:e\.g\.|i\.e\.,? like|such as)\s|"
    r"\[\d+(?:[,–-]\s?\d+)*\]\s+(?:propos|introduc|us|show|present|adopt|employ|found)|"
    r"\b(?:propos|introduc)ed (?:by|in)\b|\binspired by\b|\bfollowing\s+\[\d", re.I)
_COMPARISON = re.compile(
    r"\b(?:compar\w*|than|versus|vs\.?|baselines?|outperform\w*|surpass\w*|beats?|"
    r"competitor|counterparts?|instead of|rather than|in contrast to|unlike)\b", re.I)
NEGATION = re.compile(
    r"\b(?:no|not|without|never|neither|nor|none|remov\w*|eliminat\w*|discard\w*|avoid\w*|"
    r"abandon\w*|get rid of|free of|dispens\w*|omit\w*|drop(?:s|ped|ping)? (?:the )?|"
    r"replac\w*|instead of|rather than)\b|n't\b|-free\b", re.I)
_NEGATIVE_RESULT = re.compile(
    r"\b(?:ineffective|not (?:effective|helpful|beneficial|necessary|needed|useful)|"
    r"does not (?:help|improve)|do not (?:help|improve)|no (?:gain|improvement|benefit)|"
    r"fails? to|failed to|hurts?|harmful|degrad\w*|worse|unnecessary|detrimental|drawbacks?|"
    r"suboptimal|lack\w*)\b", re.I)
DESIGN_VERB = re.compile(
    r"\b(?:is|are|was|were) (?:\w+ )?(?:applied|used|adopted|employed|added|inserted|placed|"
    r"appended|stacked|followed|composed|built|implemented|set|introduced|replaced)\b|"
    r"\b(?:consists? of|comprises?|contains?|is composed of|is made of|built on|"
    r"starts? with|ends? with)\b|"
    r"\b(?:gives?|yields?|improves?|brings?|boosts?|reduces?)\b[^.]{0,50}?\d+(?:\.\d+)?\s?%", re.I)
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def is_table_like(text: str) -> bool:
    words = text.split()
    if not words:
        return True
    numeric = sum(bool(re.fullmatch(r"[\d.,%×+\-−()/]+|\d+x\d+", w)) for w in words)
    return numeric > 0.45 * len(words) or len(_NUMBERS.findall(text)) > 14


def is_quotable(text: str) -> bool:
    """A whole sentence of words: starts like a sentence, ends with punctuation, mostly
    letters, not a table dump or a run of figure labels."""
    if len(text) < 30 or len(text.split()) < 6:
        return False
    if not (text[0].isupper() or text[0] in "(\"“‘'") or text[-1] not in ".!?:;)\"”":
        return False
    if sum(c.isalpha() or c == " " for c in text) < 0.75 * len(text):
        return False
    long_words = [w for w in text.split() if len(w) > 25]
    return not long_words and not is_table_like(text)


@dataclass
class Sentence:
    text: str
    page: int
    section: str
    kind: str  # see section_kind; "front" = page 1 before the first heading
    first_person: bool = False
    contribution: bool = False
    caption: bool = False
    table_like: bool = False
    quotable: bool = False
    own_model: bool = False  # names the paper's model (from the title)

    @property
    def own(self) -> bool:
        """Written about the paper's own work."""
        return self.first_person or self.own_model or self.contribution

    @property
    def weak_section(self) -> bool:
        return self.kind in ("related", "intro")


def model_names(title: str) -> list[str]:
    """Names the title gives the paper's model: the part before a colon when it is one or two
    words ("ShuffleNet: ...", "CBAM: ..."), and CamelCase / all-caps words of the title."""
    names: list[str] = []
    head = title.split(":")[0].strip()
    if ":" in title and 1 <= len(head.split()) <= 2:
        names.append(head)
    for w in re.findall(r"\b[A-Za-z][A-Za-z0-9\-]+\b", title):
        if re.search(r"[a-z][A-Z]|^[A-Z]{2,}[a-z]*[A-Z]*$", w) and len(w) >= 3 and not (
                title.isupper()):
            names.append(w)
    return list(dict.fromkeys(n for n in names if len(n) >= 3))


def analyse(segments: list[Segment], title: str) -> list[Sentence]:
    names = model_names(title)
    name_rx = (re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b", re.I)
               if names else None)
    out: list[Sentence] = []
    parents: dict[str, str] = {}  # "2" -> kind of section 2, inherited by 2.1, 2.4, ...
    for seg in segments:
        kind = section_kind(seg.section, seg.appendix)
        num = re.match(r"^(\d{1,2}|[A-H])(?:\.(\d{1,2}))?", seg.section)
        if num and num.group(2) is None:
            parents[num.group(1)] = kind
        elif num and parents.get(num.group(1)) in ("related", "experiment", "intro"):
            kind = parents[num.group(1)]
        if kind == "front" and seg.page > 1:
            kind = "method"
        heading = re.sub(r"^(?:\d{1,2}(?:\.\d{1,2}){0,2}\.?|[A-H](?:\.\d{1,2}){0,2}\.?)\s+", "",
                         " ".join(seg.section.split()))
        for text in sentences(seg.text):
            for head in (" ".join(seg.section.split()), heading):
                if head and len(head) > 3 and text.startswith(head + " ") and \
                        text[len(head) + 1:][:1].isupper():
                    text = text[len(head) + 1:]  # "ShuffleNet Unit Taking advantage of ..."
                    break
            if len(text) < 8:
                continue
            s = Sentence(text=text, page=seg.page, section=seg.section, kind=kind)
            s.first_person = bool(_FIRST_PERSON.search(text))
            s.contribution = bool(_CONTRIB.search(text))
            s.caption = bool(_CAPTION.match(text))
            s.table_like = is_table_like(text)
            s.quotable = is_quotable(text)
            s.own_model = bool(name_rx and name_rx.search(text))
            out.append(s)
    return out


# ------------------------------------------------------------------ concept use
def negated(text: str, start: int, span: int = 60) -> bool:
    """A negation shortly before position ``start`` ("without BN", "we do not use X"), except
    the new side of a replacement ("replacing ReLU with GELU": GELU is used)."""
    before = text[max(0, start - span):start]
    hits = list(NEGATION.finditer(before))
    if not hits:
        return False
    last = hits[-1]
    if re.match(r"replac|substitut|swap", last.group(0), re.I) and re.search(
            r"\b(?:with|by|for)\b", before[last.end():]):
        return False
    return True


def _window(text: str, start: int, end: int, before: int = 60, after: int = 30) -> str:
    return text[max(0, start - before):start] + " " + text[end:end + after]


def concept_use(s: Sentence, m: re.Match[str], training: bool = False) -> float | None:
    """Score of sentence ``s`` as evidence that the paper USES the concept matched at ``m``;
    None when it only mentions it (other work, comparison, negation, negative result)."""
    if s.table_like:
        return None
    local = _window(s.text, m.start(), m.end())
    if negated(s.text, m.start()) or _NEGATIVE_RESULT.search(local):
        return None
    if re.match(r"\s*(?:\[\d|\([A-Z][a-z]+ et al|\(\w+, \d{4})", s.text[m.end():]) and not (
            s.own or DESIGN_VERB.search(s.text)):
        return None  # "X [12] ...": a citation of the work that introduced X
    if not own_clause(s.text, m):
        return None
    if _COMPARISON.search(local) or re.search(r"\bwe compare\b", s.text, re.I):
        return None
    if s.weak_section and not (s.contribution or (s.caption and s.own)):
        return None
    if training and not (s.contribution or s.kind in ("abstract", "front")):
        return None  # a training recipe in the setup is not the paper's design
    if not (s.own or DESIGN_VERB.search(s.text) or s.caption):
        return None
    score = 1.0 + 2.0 * s.contribution + 1.0 * s.first_person + 1.0 * s.own_model
    score += 1.0 * (s.kind in ("abstract", "front")) + 0.5 * (s.kind in ("method", "appendix"))
    score += 0.5 * s.caption + 1.0 * s.quotable - 1.0 * (s.kind == "experiment")
    score += 1.5 * (s.kind == "method" and not s.own and bool(DESIGN_VERB.search(s.text)))
    return score


_CLAUSE = re.compile(r"[;:]\s+|,\s+(?=(?:which|while|whereas|but|and this|this)\b)")


def own_clause(text: str, m: re.Match[str]) -> bool:
    """The clause holding match ``m`` is not about other work and compares nothing."""
    start = 0
    previous = ""
    for part in _CLAUSE.split(text):
        start = text.find(part, start)
        end = start + len(part)
        if start <= m.start() <= end:
            scope = part
            if re.match(r"(?:which|that|who|whose)\b", part) and previous:
                scope = previous + " " + part  # "inspired by ResNet, which uses shortcuts"
            return not (_OTHER_WORK.search(scope) or _COMPARISON.search(scope))
        previous = part
        start = end
    return True


# ------------------------------------------------------------------ new contributions
HEADS = (r"module|block|unit|layer|operation|operator|convolution|conv|connection|shortcut|"
         r"bypass|branch|attention|mechanism|technique|re-?parameteri[sz]ation|topology|"
         r"strategy|ratio|pooling|normali[sz]ation|activation|stem|head|cell|filters?|kernel|"
         r"scheme|gate|gating|body|stage|transform")
_HEAD_RX = re.compile(rf"(?:{HEADS})s?$", re.I)
_NP_WORD = r"[A-Za-z0-9][A-Za-z0-9\-×]*"
_NP = rf"(?:{_NP_WORD}\s+){{0,6}}{_NP_WORD}"
_STOP_WORDS = {"which", "that", "to", "for", "with", "in", "on", "by", "and", "as", "from",
               "at", "into", "so", "where", "while", "whose", "via", "using", "can", "is",
               "are", "was", "were", "be", "of", "the", "we", "it", "this", "these", "our",
               "because", "since", "if", "when", "than", "but", "also", "here",
               "has", "have", "had", "allows", "enables", "contains", "consists", "comprises",
               "adds", "uses", "gives", "yields", "achieves", "reduces", "improves"}
_LEADING = {"a", "an", "the", "our", "two", "three", "new", "novel", "simple", "efficient",
            "effective", "yet", "powerful", "lightweight", "light-weight", "proposed", "called",
            "named", "termed", "so-called", "highly", "extremely", "very", "following", "each",
            "both", "several", "some", "such", "this", "these", "general", "network", "final", "building", "architectural", "whole", "overall", "basic",
            "entire", "main", "same", "standard", "different", "intermediate", "additional",
            "first", "second", "last", "one", "unit", "module", "block", "layer", "layers",
            "design", "specific", "particular", "resulting", "corresponding", "original"}
_CONTRIB_NP = re.compile(
    rf"\b(?:we|this (?:paper|work))\s+{_AUX}(?:{CONTRIB_VERB})\s+"
    rf"(?:to\s+(?:use|apply|adopt)\s+)?(?P<np>{_NP})", re.I)
_NAMED_NP = re.compile(rf"\b(?:called|named|termed|dubbed|we call (?:it|them))\s+[“\"'‘]?"
                       rf"(?P<np>{_NP})", re.I)
_RUN_IN = re.compile(rf"^(?P<np>[A-Z]{_NP})\.\s+[A-Z]")
_STRATEGY = re.compile(r"\b(?:strategy|principle|guideline|rule|design choice)\s*\d+\s*[.:)]\s*"
                       r"(?P<np>[A-Z][^.]{8,140})\.", re.I)
_REMOVAL = re.compile(
    rf"\bwe (?:do not|don't|did not|never) (?:use|apply|adopt|add|need|employ)\s+"
    rf"(?P<np>{_NP_WORD}(?:\s+{_NP_WORD}){{0,2}}\s+(?:after|before|in|on|between|at)\s+"
    rf"(?:the\s+|each\s+|every\s+)?{_NP_WORD}(?:\s+{_NP_WORD}){{0,2}})", re.I)
_LACK = re.compile(rf"\b(?:the )?(?:lack|absence) of (?:any )?(?P<np>{_NP_WORD}(?:\s+{_NP_WORD}){{0,3}})"
                   r"\s+in\b", re.I)
_ONLY = re.compile(
    rf"\b(?:uses?|using|composed of|consists? of|consisting of|built from|made of|has)\s+"
    rf"(?:nothing but|only|exclusively)\s+(?:a stack of\s+)?"
    rf"(?P<np>{_NP_WORD}(?:\s+(?:×\s+)?{_NP_WORD}){{0,5}})", re.I)


@dataclass
class Candidate:
    name: str
    how: str  # contribution | named | heading | caption | strategy | removal
    sentences: list[Sentence] = field(default_factory=list)


def _clean_np(np_text: str, head_required: bool = True) -> str:
    words = np_text.replace("“", "").replace("”", "").replace('"', "").split()
    cut: list[str] = []
    for w in words:
        if w.lower() in _STOP_WORDS and cut:
            break
        cut.append(w)
    while cut and (cut[0].lower() in _LEADING | _STOP_WORDS or cut[0].lower().endswith("ly")):
        cut.pop(0)
    # shorten to the last head noun ("Fire module, our new building block" -> "Fire module")
    if head_required:
        last = max((i for i, w in enumerate(cut) if _HEAD_RX.fullmatch(w.strip(",;:"))),
                   default=-1)
        if last < 0:
            return ""
        cut = cut[:last + 1]
    name = " ".join(w.strip(",;:()") for w in cut).strip()
    return name if 3 <= len(name) <= 80 and len(cut) <= 7 else ""


def name_key(name: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in _LEADING]
    return " ".join(w[:-1] if w.endswith("s") and len(w) > 4 else w for w in words)


def candidates(sents: list[Sentence], names: list[str]) -> list[Candidate]:
    """Contribution names with the sentences they come from (see the module docstring)."""
    model = {n.lower() for n in names}
    found: dict[str, Candidate] = {}

    def add(raw: str, how: str, s: Sentence, head_required: bool = True) -> None:
        name = _clean_np(raw, head_required) if head_required else " ".join(raw.split())
        if not name:
            return
        low = name.lower()
        if low in model or any(low == f"{m} {t}" for m in model
                               for t in ("architecture", "network", "model", "family")):
            return  # the whole model is not one design idea; its parts are
        key = name_key(name)
        if not key or len(key) < 3:
            return
        cand = found.setdefault(key, Candidate(name, how))
        if s not in cand.sentences:
            cand.sentences.append(s)

    for i, s in enumerate(sents):
        if s.kind == "related":
            continue
        text = s.text
        if _STRATEGY_HEAD.search(text) and i + 1 < len(sents):  # "Strategy 1." | "Replace ..."
            nxt = sents[i + 1]
            add(_imperative(nxt.text), "strategy", nxt, head_required=False)
        if s.table_like:
            continue
        if s.contribution:
            for m in _CONTRIB_NP.finditer(text):
                add(m.group("np"), "contribution", s)
        if s.contribution or (s.own and s.kind in ("method", "abstract", "front")):
            for m in _NAMED_NP.finditer(text):
                if own_clause(text, m) and not re.match(
                        r"[^.;]{0,80}?\s(?:in|by|of|from)\s+\[\d", text[m.start():m.end() + 20]):
                    add(m.group("np"), "named", s)
        if s.caption or s.own_model:
            for m in _CAPTION_ITEM.finditer(text):
                if re.match(r"\w+", m.group("np")).group(0).lower() in model:
                    add(m.group("np"), "caption", s, head_required=False)
        m = _RUN_IN.match(text)
        if m and s.kind in ("method", "front", "abstract"):
            add(m.group("np"), "heading", s)
        elif (s.kind == "method" and len(text.split()) <= 6 and text.endswith(".")
              and text[0].isupper() and i + 1 < len(sents)):  # "Spatial attention module."
            name = _clean_np(text.rstrip("."))
            if name and name.lower() == text.rstrip(".").lower():
                add(name, "heading", sents[i + 1])
        for m in _STRATEGY.finditer(text):
            add(_imperative(m.group("np")), "strategy", s, head_required=False)
        if s.own and s.kind in ("method", "abstract", "front"):
            for rx in (_REMOVAL, _LACK):
                for m in rx.finditer(text):
                    if not own_clause(text, m):
                        continue
                    phrase = _clean_np(m.group("np"), head_required=False)
                    if phrase:
                        add("No " + phrase, "removal", s, head_required=False)
            for m in _ONLY.finditer(text):
                if not own_clause(text, m):
                    continue
                phrase = _only_phrase(m.group("np"))
                if phrase:
                    add("Only " + phrase, "removal", s, head_required=False)
    return _dedup([c for c in found.values() if _specific(c.name)])


_STRENGTH = {"strategy": 5, "removal": 5, "contribution": 4, "named": 4, "caption": 3,
             "heading": 3}
# "(c) ShuffleNet unit with stride = 2": a figure's item naming a variant of the model's unit
_CAPTION_ITEM = re.compile(
    r"(?:^|[;:.]\s+|\s)\(?[a-h]\)\s+(?P<np>[A-Z][\w\-]*(?:\s+[\w\-]+){0,2}\s+(?:unit|block|module|cell|"
    r"layer)s?\s+with\s+[^.;,()]{3,40}?)(?=[.;,]|\s+\(|$)")


def content_words(name: str) -> frozenset[str]:
    return frozenset(w for w in name_key(name).split()
                     if w not in _LEADING and not _HEAD_RX.fullmatch(w) and w not in
                     ("re", "d", "x"))


def _dedup(cands: list[Candidate]) -> list[Candidate]:
    """One candidate per idea: names whose content words contain one another are the same
    ("spatial attention module" / "2D spatial attention", "structural / model
    re-parameterization" share "parameterization"); the strongest cue's name is kept."""
    out: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (-_STRENGTH[c.how], -len(c.sentences))):
        words = content_words(c.name)
        same = next((o for o in out if c.how not in ("strategy", "removal")
                     and o.how not in ("strategy", "removal")
                     and (_contains(words, content_words(o.name))
                          or _core(c.name) == _core(o.name))), None)
        if same is None:
            out.append(c)
        else:
            same.sentences += [s for s in c.sentences if s not in same.sentences]
    return out


def _contains(a: frozenset[str], b: frozenset[str]) -> bool:
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    return bool(small) and small <= big and (len(small) >= 2 or len(big) <= 2)


def _core(name: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if not _HEAD_RX.fullmatch(w)]
    return words[-1] if words else name.lower()


_STRATEGY_HEAD = re.compile(r"\b(?:strategy|principle|guideline|rule|design choice)\s*\d+\s*[.:)]$",
                            re.I)


def _only_phrase(np_text: str) -> str:
    """"3 × 3 conv and ReLU because ..." -> "3 × 3 conv and ReLU" (needs a head noun)."""
    words: list[str] = []
    for w in np_text.split():
        if w.lower() in _STOP_WORDS - {"and"}:
            break
        words.append(w)
    while words and (words[-1].lower() == "and"):
        words.pop()
    phrase = " ".join(words)
    if not re.search(rf"(?:{HEADS})s?\b|\b(?:conv|relu|gelu|norm)\w*", phrase, re.I):
        return ""
    content = [w for w in re.findall(r"[A-Za-z]{3,}", phrase)
               if w.lower() not in _LEADING | _STOP_WORDS and not _HEAD_RX.fullmatch(w)]
    return phrase if content else ""


def _imperative(text: str) -> str:
    """The design rule of a strategy sentence, without its motivation clause."""
    text = re.split(r"\s+(?:so that|in order to|because|since|which|to make|to keep)\s+|[,;:]",
                    text.strip().rstrip("."), maxsplit=1)[0]
    words = text.split()
    if not words or not words[0][:1].isupper() or len(words) > 12 or len(words) < 2:
        return ""
    return " ".join(words)


def _specific(name: str) -> bool:
    """A name that says what the idea is: at least one word besides head nouns and fillers."""
    words = re.findall(r"[A-Za-z0-9×]+", name)
    content = [w for w in words if w.lower() not in _LEADING | _STOP_WORDS
               and not _HEAD_RX.fullmatch(w)]
    return bool(content)


def heading_names(sections: list[tuple[str, str]]) -> list[str]:
    """Method-section headings that name a design element ("3.2 The Fire Module")."""
    out = []
    for section, kind in sections:
        if kind != "method":
            continue
        name = re.sub(r"^(?:\d{1,2}(?:\.\d{1,2}){0,2}\.?|[A-H](?:\.\d{1,2}){0,2}\.?)\s+", "",
                      section).strip()
        if name.isupper():
            name = name.title()
        cleaned = _clean_np(name)
        if cleaned and cleaned.lower() == name.lower().strip(" .").removeprefix("the ").strip():
            out.append(cleaned)
    return out
