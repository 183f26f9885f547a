"""Knowledge-layer benchmark: offline ingestion throughput and semantic query latency.

    python benchmarks/bench_knowledge.py [--pages 50] [--ideas 10000] [--queries 200]

1. Ingestion: a generated paper-like PDF (fpdf2, ~3.5k characters per page, numbered sections,
   a references tail) ingested end to end into a fresh store — pypdf text extraction,
   section-aware chunking, offline lexicon extraction, MiniLM (int8 ONNX) embeddings with a cold
   cache, chromadb writes. Model loading and imports are warmed up first on another small PDF.
   Target: >= 4 pages/s on 2 cores. Also a per-stage breakdown and a re-ingest of the same text
   in new bytes (embedding cache hits).
2. Query: ``KnowledgeStore.search`` (MiniLM query embedding + in-memory cosine top-k) over
   ``--ideas`` ideas. Target: < 20 ms. chromadb's own HNSW query on the same collection for
   comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("paper_pdfs", ROOT / "tests/knowledge/paper_pdfs.py")
paper_pdfs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper_pdfs)  # type: ignore[union-attr]


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
    t0 = time.perf_counter()
    summary = store.ingest([pdf])
    dt = time.perf_counter() - t0
    (res,) = summary.files
    assert res.status == "ingested", res
    _row("ingest end-to-end, cold embedding cache", f"{res.pages / dt:.2f} pages/s",
         f"{res.pages} pages, {res.chunks} chunks, {res.ideas_new} ideas in {dt:.2f} s")

    # same text, different bytes (new metadata title): new paper, embedding cache hits
    pdf2 = paper_pdfs.write_pdf(tmp / "long2.pdf", paper_pdfs.long_paper_pages(n_pages, seed=0),
                                meta_title="A Long Study, revised")
    t0 = time.perf_counter()
    summary = store.ingest([pdf2])
    dt2 = time.perf_counter() - t0
    _row("ingest, same text re-ingested (cache hits)", f"{summary.pages / dt2:.2f} pages/s",
         f"{dt2:.2f} s")
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
    _row(f"build store with {n_ideas} ideas (embed+chroma)", f"{t_build:.1f} s",
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

    col = store._collection("ideas")
    qv = store.embedder.inner.embed(queries)
    chroma_lat = []
    for v in qv:
        t = time.perf_counter()
        col.query(query_embeddings=[v.tolist()], n_results=10)
        chroma_lat.append((time.perf_counter() - t) * 1e3)
    _row("  of which: chromadb HNSW query alone (compare)", f"{statistics.median(chroma_lat):.1f} ms",
         "median, vector given")
    from archlore.knowledge.merge import matvec

    m = store._dup_index().matrix
    t = time.perf_counter()
    for v in qv:
        np.argpartition(-matvec(m, v), 10)[:10]
    _row("  of which: in-memory cosine top-k", f"{(time.perf_counter() - t) / len(qv) * 1e3:.2f} ms",
         "mean, vector given")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--ideas", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip-query", action="store_true", help="only the ingestion part")
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, load average {load:.1f} "
          "(figures are only meaningful on an otherwise idle machine)")
    print(f"| {'measure':<44} | {'value':>14} | note |")
    print(f"|{'-' * 46}|{'-' * 16}|------|")
    with tempfile.TemporaryDirectory() as d:
        bench_ingest(Path(d), args.pages)
        if not args.skip_query:
            bench_query(Path(d), args.ideas, args.queries)


if __name__ == "__main__":
    main()
