"""The built-in corpus: coverage of every category, valid ideas, citations, applicable edits."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from archlore.corpora import load_builtin_ideas, load_builtin_papers
from archlore.knowledge.schema import Category, Idea
from archlore.search.protocol import Constraints
from archlore.search.spaces.open import OpenSpace, apply_edits

IDEAS = load_builtin_ideas()
ARXIV = re.compile(r"^\d{4}\.\d{4,5}$")


def test_at_least_40_ideas_with_unique_ids():
    ids = [i.id for i in IDEAS]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)


def test_every_category_has_three_ideas_and_three_applicable_ones():
    counts = Counter(i.category for i in IDEAS)
    applicable = Counter(i.category for i in IDEAS if i.edits)
    for category in Category:
        assert counts[category] >= 3, category
        assert applicable[category] >= 3, category


def test_ideas_round_trip_through_the_schema_and_cite_real_papers():
    papers = {p.id: p for p in load_builtin_papers()}
    for idea in IDEAS:
        assert Idea.model_validate_json(idea.model_dump_json()) == idea
        assert idea.source == "corpus" and idea.description and idea.name
        assert idea.provenance, idea.id
        for prov in idea.provenance:
            assert ARXIV.match(prov.paper_id), prov.paper_id
            assert prov.title == papers[prov.paper_id].title
            # descriptions are paraphrases: nothing is presented as a verbatim quote
            assert prov.quote == "" and prov.page is None
    assert all(p.idea_ids and p.year and 2010 <= p.year <= 2023 for p in papers.values())


def test_loader_returns_fresh_copies():
    first = load_builtin_ideas()
    first[0].name = "changed"
    assert load_builtin_ideas()[0].name != "changed"


@pytest.mark.parametrize("constraints", [Constraints(), Constraints(in_channels=3, image_size=32)],
                         ids=["digits", "cifar"])
def test_every_edit_applies_to_every_seed_and_changes_some(constraints):
    seeds = OpenSpace().seeds(constraints)
    for idea in (i for i in IDEAS if i.edits):
        changed = 0
        for seed in seeds:
            child = apply_edits(seed, idea.edits)  # raises ValueError on a bad path / value
            changed += child.key() != seed.key()
        assert changed >= 1, f"{idea.id} changes no seed net"


def test_training_only_ideas_say_why_they_have_no_edits():
    for idea in IDEAS:
        if not idea.applicable_offline:
            assert "training" in idea.applies_to
            assert "no model edit" in idea.description or "no edits" in idea.description
