"""The built-in design knowledge archlore starts from.

One YAML file per ``knowledge.schema.Category`` (``<category>.yaml``: ``category`` plus a list of
``ideas``) and ``papers.yaml`` (arXiv id -> title, authors, year). Each idea names the papers it
comes from (``papers: [arXiv ids]``), turned into ``Provenance`` records here. Descriptions are
this project's paraphrases; ``Provenance.quote`` and ``page`` stay empty because no PDF text was
quoted.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from archlore.knowledge.schema import Category, Idea, Paper, Provenance
from pydantic import ValidationError

__all__ = ["load_builtin_ideas", "load_builtin_papers", "CorpusError"]


class CorpusError(ValueError):
    """A corpus file is malformed; the message names the file and the idea."""


def _read_yaml(name: str) -> Any:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CorpusError(f"corpora/{name}: invalid YAML: {exc}") from None


@lru_cache(maxsize=1)
def _papers() -> dict[str, dict[str, Any]]:
    return {str(k): v for k, v in _read_yaml("papers.yaml").items()}


def _idea(raw: dict[str, Any], category: str, fname: str) -> Idea:
    raw = dict(raw)
    ids = [str(p) for p in raw.pop("papers", [])]
    papers = _papers()
    missing = [p for p in ids if p not in papers]
    if missing:
        raise CorpusError(f"corpora/{fname}: idea {raw.get('id')!r} cites unknown papers {missing}")
    raw["provenance"] = [Provenance(paper_id=p, title=papers[p]["title"]) for p in ids]
    raw.setdefault("category", category)
    raw.setdefault("source", "corpus")
    try:
        return Idea.model_validate(raw)
    except ValidationError as exc:
        raise CorpusError(f"corpora/{fname}: idea {raw.get('id')!r} is invalid: {exc}") from None


@lru_cache(maxsize=1)
def _load() -> tuple[Idea, ...]:
    ideas: list[Idea] = []
    for category in Category:
        fname = f"{category.value}.yaml"
        data = _read_yaml(fname)
        if data.get("category") != category.value:
            raise CorpusError(f"corpora/{fname}: category field is {data.get('category')!r}")
        ideas.extend(_idea(raw, category.value, fname) for raw in data.get("ideas", []))
    seen: set[str] = set()
    for idea in ideas:
        if idea.id in seen:
            raise CorpusError(f"duplicate idea id {idea.id!r} in corpora/")
        seen.add(idea.id)
    return tuple(ideas)


def load_builtin_ideas() -> list[Idea]:
    """Every built-in idea, validated (fresh copies: callers may modify them)."""
    return [i.model_copy(deep=True) for i in _load()]


def load_builtin_papers() -> list[Paper]:
    """The cited papers as ``Paper`` records (no PDF ships, so ``sha256`` and ``pages`` are empty)."""
    by_paper: dict[str, list[str]] = {}
    for idea in _load():
        for prov in idea.provenance:
            by_paper.setdefault(prov.paper_id, []).append(idea.id)
    return [Paper(id=pid, title=p["title"], authors=list(p.get("authors", [])), year=p.get("year"),
                  sha256="", idea_ids=by_paper.get(pid, []))
            for pid, p in _papers().items()]
