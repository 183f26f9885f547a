"""The text layer on generated PDFs: Unicode normalisation, hyphenation, appendices after the
references, titles under conference headers, arXiv stamps, authors, running headers."""

from __future__ import annotations

from archlore.knowledge.chunking import chunk_segments, segment_pages
from archlore.knowledge.extract_base import PaperText
from archlore.knowledge.extract_offline import OfflineExtractor
from archlore.knowledge.pdf import read_pdf
from archlore.knowledge.text import clean_pages, dehyphenate, normalise_unicode

from tests.knowledge.paper_pdfs import write_pdf

BODY = "The network is trained on the standard split and evaluated on held-out images. " * 6


def test_ligatures_accents_and_glyph_noise_are_normalised():
    assert normalise_unicode("channel shu\ufb04e, e\ufb03cient, \ufb01lters") == \
        "channel shuffle, efficient, filters"
    assert normalise_unicode("L´eon Bottou and Piotr Doll´ar") == "Léon Bottou and Piotr Dollár"
    assert "\x13" not in normalise_unicode("VSHHG\x13\x13 text")


def test_line_end_hyphens_use_the_documents_vocabulary():
    pages = ["a convo-\nlutional layer, a multi-\nbranch block", "the multi-branch topology is "
             "a convolutional design; a training-\ntime trick"]
    out = dehyphenate(pages)
    assert "convolutional layer" in out[0]
    assert "multi-branch block" in out[0]  # the paper writes "multi-branch" elsewhere
    assert "training-time" in out[1]  # a hyphenated compound stays one


def test_ligature_pdf_keeps_its_core_idea(tmp_path):
    pdf = write_pdf(tmp_path / "shuffle.pdf", [[
        ("title", "Shu\ufb04eBlocks: E\ufb03cient Networks"),
        ("heading", "Abstract"),
        ("text", "We propose a channel shu\ufb04e operation between grouped convolutions, which "
                 "improves accuracy by 1.5% at the same FLOPs. " + BODY),
        ("heading", "3 Method"),
        ("text", "Our unit uses a channel shu\ufb04e after each group convolution so that "
                 "information ﬂows between groups. " + BODY)]], unicode_font=True)
    doc = read_pdf(pdf)
    text = "".join(doc.pages)
    assert not any(c in text for c in "\ufb00\ufb01\ufb02\ufb03\ufb04")
    assert doc.title == "ShuffleBlocks: Efficient Networks"
    ideas = OfflineExtractor().extract(PaperText(doc.paper_id, doc.title,
                                                 segment_pages(doc.pages)))
    shuffle = next(i for i in ideas if i.id == "channel-shuffle")
    assert "channel shuffle" in shuffle.provenance[0].quote


def test_appendix_after_references_is_kept_and_labelled(tmp_path):
    refs = "\n".join(f"[{j}] A. Author. A cited paper on networks. In CVPR, {2000 + j}."
                     for j in range(1, 25))
    pdf = write_pdf(tmp_path / "appx.pdf", [
        [("title", "Normaliser-Free Training of Deep Networks"), ("heading", "1 Method"),
         ("text", "We train deep residual networks. " + BODY)],
        [("heading", "References"), ("text", refs)],
        [("text", refs)],
        # not headed "Appendix": the model details follow the references directly
        [("heading", "Model details"),
         ("text", "We use GELU activations in every block of our model, which improves top-1 "
                  "accuracy by 0.6%. " + BODY)],
        [("text", "Further ablations of our model on ImageNet. " + BODY)]])
    doc = read_pdf(pdf)
    segments = segment_pages(doc.pages)
    kept = {s.page for s in segments}
    assert kept == {1, 4, 5}  # reference pages dropped, appendix pages kept
    assert all(s.appendix for s in segments if s.page >= 4)
    assert not any(s.appendix for s in segments if s.page == 1)
    chunks = chunk_segments(doc.paper_id, segments)
    assert {c.page for c in chunks if c.appendix} == {4, 5}
    ideas = OfflineExtractor().extract(PaperText(doc.paper_id, doc.title, segments))
    gelu = next(i for i in ideas if i.id == "gelu")
    assert gelu.provenance[0].page == 4


def test_title_under_a_conference_header_arxiv_stamp_at_the_end_and_authors(tmp_path):
    pdf = write_pdf(tmp_path / "no_id_in_name.pdf", [[
        ("small", "Under review as a conference paper at ICLR 2017"),
        ("title", "TINYNET: SMALL NETWORKS WITH FEW\nPARAMETERS AND FAST INFERENCE"),
        ("text", "Ada Lovelace1, Alan Turing2, and Grace Hopper1"),
        ("text", "1 University of Somewhere 2 Institute of Elsewhere"),
        ("heading", "Abstract"), ("text", BODY),
        ("small", "arXiv:1602.07360v4 [cs.CV] 4 Nov 2016")]])
    doc = read_pdf(pdf)
    assert doc.title == "TINYNET: SMALL NETWORKS WITH FEW PARAMETERS AND FAST INFERENCE"
    assert doc.arxiv_id == "1602.07360" and doc.year == 2016
    assert doc.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]


def test_running_headers_are_dropped_but_page_one_is_kept():
    words = "alpha beta gamma delta epsilon zeta".split()
    pages = [f"Woo, Park, Lee, Kweon {i}\nThe {w} part of the text about our model.\n{i}"
             for i, w in enumerate(words, start=1)]
    out = clean_pages(pages)
    assert out[0].startswith("Woo, Park")  # page 1 untouched
    assert all("Woo, Park" not in p for p in out[1:])
    assert all(f"The {w} part" in out[i] for i, w in enumerate(words))
