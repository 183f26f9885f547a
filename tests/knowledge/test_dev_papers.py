"""The offline extractor on real CNN-design papers (``../shared/papers-pdf``, not in the
project): the issue-11 targets, judged against the human key ideas of ``expected.yaml``."""

from __future__ import annotations

import pytest

from tests.knowledge.dev_papers import dev_dir, judge, load_expected, quote_supports, summary

DEV = dev_dir()
needs_dev = pytest.mark.skipif(
    DEV is None, reason="development papers absent (../shared/papers-pdf/expected.yaml); "
                        "set ARCHLORE_DEV_PAPERS to run these")


@pytest.fixture(scope="module")
def extracted(embedder):
    from archlore.knowledge.chunking import segment_pages
    from archlore.knowledge.extract_base import PaperText
    from archlore.knowledge.extract_offline import OfflineExtractor
    from archlore.knowledge.pdf import read_pdf

    out = {}
    for entry in load_expected(DEV):
        doc = read_pdf(DEV / entry["file"])
        ideas = OfflineExtractor().extract(PaperText(doc.paper_id, doc.title,
                                                     segment_pages(doc.pages)))
        out[entry["file"]] = (entry, doc, ideas)
    return out


@needs_dev
def test_text_layer_on_real_papers(extracted):
    for entry, doc, _ in extracted.values():
        text = "".join(doc.pages)
        assert not any(c in text for c in "\ufb00\ufb01\ufb02\ufb03\ufb04"), entry["file"]
        assert doc.arxiv_id == entry["arxiv"], entry["file"]
        assert " ".join(doc.title.lower().split()) == " ".join(entry["title"].lower().split())


@needs_dev
def test_offline_extraction_meets_the_issue_targets(extracted, embedder):
    rows = {f: judge(e, ideas, embedder) for f, (e, _, ideas) in extracted.items()}
    s = summary(rows, [e for e, _, _ in extracted.values()])
    table = "\n".join(f"{f}: {r.idea_id} -> {r.key}" for f, rs in rows.items() for r in rs)
    assert s["precision"] >= 0.9, table
    assert s["recall"] >= 0.6, table
    assert s["new_captured"] >= 5, table
    assert not s["not_ideas"], s["not_ideas"]
    quotes = [(i, p.quote) for _, _, ideas in extracted.values() for i in ideas
              for p in i.provenance]
    support = sum(quote_supports(i, q) for i, q in quotes) / len(quotes)
    assert support >= 0.85, [q for i, q in quotes if not quote_supports(i, q)]


@needs_dev
def test_new_contributions_are_llm_only_ideas_with_a_reason(extracted):
    for _, _, ideas in extracted.values():
        for idea in ideas:
            if not idea.applicable_offline:
                assert idea.apply_note and idea.provenance and idea.description


def test_held_out_generated_papers_keep_mentions_out(tmp_path, embedder):
    """Generated papers written after the rules were fixed (not used to tune them): what they
    only mention, compare against, or report as not helping is never extracted, and each
    paper's main contribution is found. Runs without the development papers."""
    from archlore.knowledge.chunking import segment_pages
    from archlore.knowledge.extract_base import PaperText
    from archlore.knowledge.extract_offline import OfflineExtractor
    from archlore.knowledge.pdf import read_pdf

    from tests.knowledge.heldout_papers import write_heldout

    found = {}
    for entry, pdf in write_heldout(tmp_path):
        doc = read_pdf(pdf)
        ideas = OfflineExtractor().extract(PaperText(doc.paper_id, doc.title,
                                                     segment_pages(doc.pages)))
        rows = judge(entry, ideas, embedder)
        assert not [r.not_idea for r in rows if r.not_idea], entry["file"]
        found[entry["file"]] = {i.id for i in ideas}
    assert "ghost-module" in found["ghost.pdf"]
    assert "eca" in found["eca.pdf"] and "group-norm" not in found["eca.pdf"]
    assert "octave-convolution" in found["octave.pdf"]
    assert not {"inception-module", "mixup"} & found["octave.pdf"]
