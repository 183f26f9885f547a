"""Knowledge-layer benchmark: extraction quality on real papers, ingestion throughput,
concurrent writers and semantic query latency.

    python benchmarks/bench_knowledge.py [--dev DIR] [--pages 50] [--ideas 10000]
        [--queries 200] [--concurrency 3] [--llm-base-url URL --llm-model NAME]

0. Quality (``--dev``, default ``../shared/papers-pdf``; skipped, saying so, when absent): each
   development paper ingested offline into a fresh store holding the built-in corpus, judged
   against the human key ideas of ``expected.yaml`` (``tests/knowledge/dev_papers.py``):
   precision, recall, new ideas captured, not_ideas extracted, quote support, pages/s — plus the
   same on three generated held-out papers (``tests/knowledge/heldout_papers.py``) and, with
   ``--llm-base-url``, with the LLM extractor on an OpenAI-compatible server. Also: the share of
   paper-derived ideas that fair sampling draws.

1. Ingestion: a generated paper-like PDF (fpdf2, ~3.5k characters per page, numbered sections,
   a references tail) ingested end to end into a fresh store — pypdf text extraction,
   section-aware chunking, offline lexicon extraction, MiniLM (int8 ONNX) embeddings with a cold
   cache, chromadb writes. Model loading and imports are warmed up first on another small PDF.
   Target: >= 4 pages/s on 2 cores. Also a per-stage breakdown.
1b. Concurrency (``--concurrency N``): N rounds of two ``archlore ingest`` processes writing 5
   papers each into one store at once; every round must keep all 10 papers.
2. Query: ``KnowledgeStore.search`` (MiniLM query embedding + in-memory cosine top-k) over
   ``--ideas`` ideas. Target: < 20 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.knowledge import paper_pdfs  # noqa: E402  (the repository root is on sys.path)


def _row(name: str, value: str, note: str = "") -> None:
    print(f"| {name:<44} | {value:>14} | {note} |")


def bench_ingest(tmp: Path, n_pages: int) -> None:
    from archlore.knowledge.chunking import chunk_segments, segment_pages
    from archlore.knowledge.embed import MiniLMEmbedder
    from archlore.knowledge.extract_base import PaperText
    from archlore.knowledge.extract_offline import OfflineExtractor
    from archlore.knowledge.pdf import read_pdf
    from archlore.knowledge.store import KnowledgeStore

    pdf = paper_pdfs.write_pdf(tmp / "long.pdf", paper_pdfs.long_paper_pages(n_pages, seed=0))
    warm = paper_pdfs.write_pdf(tmp / "warm.pdf", paper_pdfs.paper_pages())
    embedder = MiniLMEmbedder()

    store = KnowledgeStore(tmp / "k1", embedder=embedder, load_corpus=False)
    store.ingest([warm])  # imports, ONNX session, chromadb client
    t0, c0 = time.perf_counter(), time.process_time()
    summary = store.ingest([pdf])
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    (res,) = summary.files
    assert res.status == "ingested", res
    _row("ingest end-to-end, cold embedding cache", f"{res.pages / dt:.2f} pages/s",
         f"{res.pages} pages, {res.chunks} chunks, {res.ideas_new + res.ideas_merged} ideas in "
         f"{dt:.2f} s wall, {cpu:.2f} s CPU ({res.pages / max(cpu, 1e-9):.1f} pages per CPU-s)")

    store.close()

    # per-stage breakdown (same work, timed separately)
    t = time.perf_counter()
    doc = read_pdf(pdf)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    segs = segment_pages(doc.pages)
    chunks = chunk_segments(doc.paper_id, segs)
    t_chunk = time.perf_counter() - t
    t = time.perf_counter()
    OfflineExtractor().extract(PaperText(doc.paper_id, doc.title, segs))
    t_extract = time.perf_counter() - t
    t = time.perf_counter()
    embedder.embed([c.text for c in chunks])
    t_embed = time.perf_counter() - t
    _row("  pypdf text extraction", f"{t_read:.2f} s", f"{len(doc.pages)} pages")
    _row("  segmenting + chunking", f"{t_chunk:.2f} s", f"{len(chunks)} chunks")
    _row("  offline lexicon extraction", f"{t_extract:.2f} s", "")
    _row("  MiniLM embeddings (uncached)", f"{t_embed:.2f} s",
         f"{len(chunks) / t_embed:.1f} chunks/s")


def bench_query(tmp: Path, n_ideas: int, n_queries: int) -> None:
    import numpy as np
    from archlore.knowledge.embed import MiniLMEmbedder
    from archlore.knowledge.lexicon import CONCEPTS
    from archlore.knowledge.schema import Idea
    from archlore.knowledge.store import KnowledgeStore

    rng = random.Random(0)
    words = ("deep wide shallow grouped dilated sparse gated mixed dynamic cyclic shifted local "
             "global hybrid cascaded pyramid recursive adaptive factorised learned").split()
    ideas = []
    for i in range(n_ideas):
        c = CONCEPTS[i % len(CONCEPTS)]
        adj = " ".join(rng.sample(words, 3))
        ideas.append(Idea(id=f"{c.id}-v{i}", name=f"{adj} {c.name} #{i}", category=c.category,
                          description=f"A {adj} variant of {c.name.lower()}: {c.description}",
                          operator=c.operator))
    store = KnowledgeStore(tmp / "k2", embedder=MiniLMEmbedder(), load_corpus=False)
    t0 = time.perf_counter()
    store.add_ideas(ideas, merge=False)
    t_build = time.perf_counter() - t0
    _row(f"build store with {n_ideas} ideas (embed+SQLite)", f"{t_build:.1f} s",
         f"{n_ideas / t_build:.0f} ideas/s")

    queries = [f"{rng.choice(words)} {rng.choice(CONCEPTS).description.split(':')[0].lower()}"
               for _ in range(n_queries)]
    store.search("warm up", k=10)
    lat = []
    for q in queries:
        t = time.perf_counter()
        hits = store.search(q, k=10)
        lat.append((time.perf_counter() - t) * 1e3)
        assert len(hits) == 10
    lat.sort()
    _row(f"search latency at {len(store)} ideas, k=10", f"{statistics.median(lat):.1f} ms",
         f"p95 {lat[int(0.95 * len(lat))]:.1f} ms, mean {statistics.mean(lat):.1f} ms")

    qv = store.embedder.inner.embed(queries)
    from archlore.knowledge.merge import matvec

    m = store._dup_index().matrix
    t = time.perf_counter()
    for v in qv:
        np.argpartition(-matvec(m, v), 10)[:10]
    _row("  of which: in-memory cosine top-k", f"{(time.perf_counter() - t) / len(qv) * 1e3:.2f} ms",
         "mean, vector given")
    store.close()


def _quality(label: str, entries: list[tuple[dict, Path]], tmp: Path, extractor_factory,
             embedder, show: bool) -> dict:
    """Ingest the papers into a fresh store holding the built-in corpus; judge what the
    extractor returned for each (before merging) and whether new ones stayed new."""
    from archlore.knowledge.store import KnowledgeStore

    from tests.knowledge.dev_papers import judge, quote_supports, summary

    rows_by_paper, expected, quotes, pages, seconds, cpu = {}, [], [], 0, 0.0, 0.0
    store = KnowledgeStore(tmp / label.replace(" ", "-"), embedder=embedder, load_corpus=True)
    store.search("warm up")  # corpus embedded once, as in a user's store
    for entry, pdf in entries:
        extractor = _Capturing(extractor_factory())
        t0, c0 = time.perf_counter(), time.process_time()
        (res,) = store.ingest([pdf], extractor=extractor).files
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        captured = extractor.ideas
        pages += res.pages
        assert res.status == "ingested", res
        rows = judge(entry, captured, embedder)
        # a slow extractor (a small local LLM: minutes per page window) must not lose a
        # finished paper's figures when the run is stopped later
        print(f"  {label} {entry['file']}: {len(captured)} ideas returned, "
              f"{sum(1 for r in rows if r.key)} matching a key idea, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        for row, idea in zip(rows, captured, strict=True):
            stored = store.get(idea.id)
            # new: kept as its own idea (not merged into a corpus idea), from this paper
            row.extra["new_idea"] = stored is not None and stored.source != "corpus"
            for prov in idea.provenance:
                quotes.append((entry["file"], idea, prov, quote_supports(idea, prov.quote)))
        rows_by_paper[entry["file"]] = rows
        expected.append(entry)
    store.close()
    for rows in rows_by_paper.values():  # a new key idea counts only if captured as a new idea
        for r in rows:
            if r.extra.get("covers_new") and not r.extra.get("new_idea"):
                r.extra["covers_new"] = False
    s = summary(rows_by_paper, expected)
    s["quote_support"] = sum(q[3] for q in quotes) / max(1, len(quotes))
    s["quotes"] = len(quotes)
    s["pages_per_s"] = pages / max(seconds, 1e-9)
    if show:
        for f, rows in rows_by_paper.items():
            print(f"  {label} {f}:")
            for r in rows:
                cover = r.extra.get("covers") or r.key or "-"
                flag = " NOT-IDEA:" + r.not_idea if r.not_idea else ""
                print(f"    {r.idea_id[:40]:<40} -> {cover[:70]}{flag}")
        bad = [q for q in quotes if not q[3]]
        for f, idea, prov, _ in bad:
            print(f"    unsupported quote {f} {idea.id} p.{prov.page}: {prov.quote[:120]}")
    _row(f"{label}: precision (matched / extracted)", f"{s['precision']:.2f}",
         f"{s['matched']} / {s['extracted']} ideas; target >= 0.9")
    _row(f"{label}: recall of human key ideas", f"{s['recall']:.2f}",
         f"{s['covered']} / {s['keys']}; target >= 0.6")
    _row(f"{label}: new ideas captured as new", f"{s['new_captured']} / {s['new_total']}",
         "target >= 5 of 7")
    _row(f"{label}: not_ideas extracted", f"{len(s['not_ideas'])}",
         ", ".join(f"{p}:{i}" for p, i, _ in s["not_ideas"]) or "target 0")
    _row(f"{label}: quote support", f"{s['quote_support']:.2f}",
         f"{s['quotes']} quotes (automatic check); target >= 0.85")
    _row(f"{label}: ingestion", f"{s['pages_per_s']:.2f} pages/s",
         f"{pages} pages in {seconds:.1f} s wall, {cpu:.1f} s CPU "
         f"({pages / max(cpu, 1e-9):.1f} pages per CPU-s)")
    return s


class _Capturing:
    """Wraps an extractor and keeps what it returned (before the store merges it)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.ideas = inner, inner.name, []

    def extract(self, paper):
        self.ideas = self.inner.extract(paper)
        return self.ideas


def bench_dev(tmp: Path, dev: Path | None, show: bool, llm_url: str | None,
              llm_model: str | None) -> None:
    from archlore.knowledge.embed import MiniLMEmbedder
    from archlore.knowledge.extract_offline import OfflineExtractor

    from tests.knowledge.dev_papers import load_expected
    from tests.knowledge.heldout_papers import write_heldout

    embedder = MiniLMEmbedder()
    if dev is None:
        print("development papers absent (../shared/papers-pdf/expected.yaml): skipped")
    else:
        entries = [(e, dev / e["file"]) for e in load_expected(dev)]
        _quality("dev offline", entries, tmp, OfflineExtractor, embedder, show)
        _fair_sampling(tmp, entries, embedder)
        if llm_url:
            from archlore.agent.cli.ideas import edit_validator
            from archlore.agent.llm.openai_backend import OpenAIModel
            from archlore.knowledge.extract_llm import LLMExtractor

            model = OpenAIModel(base_url=llm_url, model=llm_model or "local")
            t0 = time.perf_counter()
            _quality("dev llm", entries, tmp, lambda: LLMExtractor(
                model, validate_edits=edit_validator()), embedder, show)
            _row("dev llm: wall time", f"{time.perf_counter() - t0:.0f} s", llm_model or "")
    held = write_heldout(tmp / "heldout")
    _quality("held-out offline", held, tmp, OfflineExtractor, embedder, show)


def _fair_sampling(tmp: Path, entries: list[tuple[dict, Path]], embedder) -> None:
    """After ingesting every dev paper into one store: the share of paper-derived ideas among
    fair draws (category uniform, then idea uniform) versus their expected share."""
    import random

    from archlore.knowledge.store import KnowledgeStore

    store = KnowledgeStore(tmp / "fair", embedder=embedder, load_corpus=True)
    store.ingest([p for _, p in entries])
    ideas = store.ideas()
    paper = {i.id for i in ideas if i.source != "corpus"}
    cats = store.categories()
    expected = sum(sum(i.id in paper for i in store.ideas(c)) / len(store.ideas(c))
                   for c in cats) / len(cats)
    draws = store.sample(20_000, rng=random.Random(0))
    share = sum(d.id in paper for d in draws) / len(draws)
    _row("fair sampling: paper-only ideas drawn", f"{share:.3f}",
         f"expected {expected:.3f}; {len(paper)} of {len(ideas)} ideas are new from papers")
    store.close()


def bench_concurrency(tmp: Path, rounds: int) -> None:
    from archlore.knowledge.store import KnowledgeStore

    from tests.knowledge.concurrent import distinct_papers, ingest_concurrently

    kept = []
    for r in range(rounds):
        a = distinct_papers(tmp / f"ca{r}", 5, f"a{r}")
        b = distinct_papers(tmp / f"cb{r}", 5, f"b{r}")
        outs, dt = ingest_concurrently(tmp / f"chome{r}", [a, b])
        store = KnowledgeStore(tmp / f"chome{r}" / "knowledge", load_corpus=False)
        kept.append(len(store.papers()))
        store.close()
        ok = sum("5 ok" in o for o in outs)
        _row(f"concurrent ingest round {r + 1}: papers kept", f"{kept[-1]} / 10",
             f"2 processes x 5 papers, {ok}/2 printed '5 ok', {dt:.1f} s")
    assert all(k == 10 for k in kept), kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--ideas", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip-query", action="store_true", help="no query-latency part")
    ap.add_argument("--dev", type=Path, default=None,
                    help="development papers with expected.yaml (default ../shared/papers-pdf)")
    ap.add_argument("--show", action="store_true", help="print every extracted idea's match")
    ap.add_argument("--concurrency", type=int, default=3, help="rounds of concurrent ingest")
    ap.add_argument("--llm-base-url", default=None, help="also measure the LLM extractor")
    ap.add_argument("--llm-model", default=None)
    args = ap.parse_args()
    from tests.knowledge.dev_papers import dev_dir

    dev = args.dev or dev_dir()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, load average {load:.1f} "
          "(figures are only meaningful on an otherwise idle machine)")
    print(f"| {'measure':<44} | {'value':>14} | note |")
    print(f"|{'-' * 46}|{'-' * 16}|------|")
    with tempfile.TemporaryDirectory() as d:
        bench_dev(Path(d), dev, args.show, args.llm_base_url, args.llm_model)
        bench_ingest(Path(d), args.pages)
        if args.concurrency:
            bench_concurrency(Path(d), args.concurrency)
        if not args.skip_query:
            bench_query(Path(d), args.ideas, args.queries)


if __name__ == "__main__":
    main()
