"""Judge extracted ideas against the human key ideas of the development papers.

``../shared/papers-pdf/`` (or ``$ARCHLORE_DEV_PAPERS``) holds real PDFs and ``expected.yaml``:
per paper the key ideas a human reader extracts (``new: true`` when absent from the built-in
corpus) and ``not_ideas`` that must not be extracted. The PDFs are read from there, never
copied into the project; callers skip when the directory is absent.

An extracted idea *matches* a key idea when the idea's name shares a specific word with the key
phrase and their texts are close: MiniLM cosine between the key phrase and the idea's name +
description, or the share of the key phrase's content words (stemmed to 5 letters; the phrase
before any parenthesis counts on its own) found in the idea's name, description and quotes.
Recall is a maximum bipartite matching of ideas to key ideas (one idea covers one key idea).
The thresholds were set once by reading the match table (``bench_knowledge.py --dev`` prints
it), not tuned per paper.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COSINE = 0.55  # key phrase vs idea name + description
OVERLAP = 0.6  # share of the key phrase's content words present in the idea's text
_GENERIC = {"convo", "conv", "layer", "modul", "unit", "block", "filte", "netwo", "desig",
            "archi", "model", "1x1", "3x3", "7x7", "using", "struc"}
_STOP = set("a an the of and or to in on with for by from into per each every its their as at "
            "is are be between after before only some where possible no not".split())


def dev_dir() -> Path | None:
    env = os.environ.get("ARCHLORE_DEV_PAPERS")
    for cand in ([Path(env)] if env else [ROOT.parent / "shared" / "papers-pdf",
                                          Path("/work/shared/papers-pdf")]):
        if (cand / "expected.yaml").is_file():
            return cand
    return None


def load_expected(directory: Path) -> list[dict]:
    import yaml

    papers = yaml.safe_load((directory / "expected.yaml").read_text())["papers"]
    return [p for p in papers if (directory / p["file"]).is_file()]


def _phrases(key: str) -> list[set[str]]:
    """The key phrase, its part before a parenthesis, and the parenthesis (an alternative
    name: "reduce the input channels of 3x3 filters (squeeze ratio)")."""
    out = [_stems(key), _stems(key.split("(")[0])]
    out += [_stems(p) for p in re.findall(r"\(([^)]*)\)", key) if len(_stems(p)) >= 2]
    return [p for p in out if p]


def _stems(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+(?:x[0-9]+)?", text.lower().replace("×", "x"))
    words = [w.rstrip("0123456789") if re.match(r"[a-z]{3}", w) else w for w in words]
    return {w[:5] for w in words if w not in _STOP and len(w) > 1}


@dataclass
class Row:
    idea_id: str
    name: str
    quote: str
    key: str | None = None  # matched key idea
    new_key: bool = False  # the matched key idea is marked new: true
    not_idea: str | None = None
    score: float = 0.0
    extra: dict = field(default_factory=dict)


def judge(entry: dict, ideas: list, embedder) -> list[Row]:
    """One row per extracted idea: the key idea (or not_idea) it matches, if any."""
    keys = [k["name"] for k in entry["key_ideas"]]
    new = {k["name"] for k in entry["key_ideas"] if k.get("new")}
    nots = list(entry.get("not_ideas", []))
    if not ideas:
        return []
    texts = [f"{i.name}. {i.description}" for i in ideas]
    vecs = embedder.embed(texts + keys + nots)
    iv, kv, nv = vecs[:len(ideas)], vecs[len(ideas):len(ideas) + len(keys)], vecs[len(ideas) +
                                                                                 len(keys):]
    rows = []
    scores = [[0.0] * len(keys) for _ in ideas]
    for j, idea in enumerate(ideas):
        quote = idea.provenance[0].quote if idea.provenance else ""
        name = _stems(f"{idea.name} {idea.operator}") - _GENERIC
        body = _stems(" ".join([idea.name, idea.description, idea.operator] +
                               [p.quote for p in idea.provenance]))
        best, best_score = None, 0.0
        for k, key in enumerate(keys):
            if not name & (_stems(key) - _GENERIC):
                continue
            overlap = max(len(st & body) / max(1, len(st))
                          for st in _phrases(key))
            cos = float(iv[j] @ kv[k])
            score = max(cos, overlap * COSINE / OVERLAP)
            if cos >= COSINE or overlap >= OVERLAP:
                scores[j][k] = score
                if score > best_score:
                    best, best_score = key, score
        row = Row(idea.id, idea.name, quote, best, best in new, score=best_score)
        for k, nt in enumerate(nots):
            cos = float(iv[j] @ nv[k])
            name_hit = _stems(nt) <= _stems(idea.name + " " + idea.operator)
            if (cos >= 0.6 or name_hit) and (best is None or cos > best_score):
                row.not_idea = nt
        rows.append(row)
    _assign(rows, scores, keys, new)
    return rows


def _assign(rows: list[Row], scores: list[list[float]], keys: list[str], new: set[str]) -> None:
    """Recall assignment: a maximum matching of ideas to key ideas (scipy's Hungarian method on
    the match scores); ``row.extra["covers"]`` names the key idea an idea covers."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    if not rows or not keys:
        return
    m = np.asarray(scores)
    r, c = linear_sum_assignment(-(m > 0).astype(float) * 10 - m)
    for j, k in zip(r, c, strict=True):
        if m[j, k] > 0:
            rows[j].extra["covers"] = keys[k]
            rows[j].extra["covers_new"] = keys[k] in new


def summary(rows_by_paper: dict[str, list[Row]], expected: list[dict]) -> dict:
    n = sum(len(r) for r in rows_by_paper.values())
    valid = sum(r.key is not None and r.not_idea is None for rs in rows_by_paper.values()
                for r in rs)
    covered = {(p, r.extra["covers"]) for p, rs in rows_by_paper.items() for r in rs
               if "covers" in r.extra}
    n_keys = sum(len(e["key_ideas"]) for e in expected)
    new_total = sum(k.get("new", False) for e in expected for k in e["key_ideas"])
    new_hit = {(p, r.extra["covers"]) for p, rs in rows_by_paper.items() for r in rs
               if r.extra.get("covers_new")}
    nots = [(p, r.idea_id, r.not_idea) for p, rs in rows_by_paper.items() for r in rs
            if r.not_idea]
    return {"extracted": n, "matched": valid, "precision": valid / max(1, n),
            "recall": len(covered) / max(1, n_keys), "keys": n_keys, "covered": len(covered),
            "new_total": new_total, "new_captured": len(new_hit), "not_ideas": nots}


_NEG = re.compile(r"\b(?:no|not|without|never|instead of|rather than|remove\w*|unlike)\b|n't\b",
                  re.I)


def quote_supports(idea, quote: str) -> bool:
    """An independent check (not the extractor's rules) that a quote supports its idea: a
    whole sentence (capital start, final punctuation, mostly words, not a table row) that
    names the idea — a lexicon pattern or most of the name's specific words — with no negation
    in the five words before the name, unless the idea itself is a removal ("No ReLU ...")."""
    from archlore.knowledge.lexicon import BY_ID

    q = " ".join(quote.split())
    words = q.split()
    if len(words) < 6 or not (q[0].isupper() or q[0] in "(\"“") or q[-1] not in ".;:!?)\"”":
        return False
    if sum(bool(re.fullmatch(r"[\d.,%×x+\-()/]+", w)) for w in words) > 0.4 * len(words):
        return False
    concept = BY_ID.get(idea.id)
    pos = None
    if concept is not None:
        m = concept.regex.search(q)
        pos = m.start() if m else None
    if pos is None:
        name = [w for w in _stems(idea.name) - _GENERIC if w not in ("only",)]
        found = [w for w in name if re.search(r"\b" + re.escape(w), q.lower())]
        if not name or len(found) < max(1, (len(name) + 1) // 2):
            return False
        pos = min(q.lower().find(w) for w in found)
    removal = idea.name.lower().startswith(("no ", "only ", "without "))
    before = " ".join(q[:pos].split()[-5:])
    return removal or not _NEG.search(before)
