"""Several ``archlore ingest`` processes writing into one knowledge store at once.

Used by ``test_concurrency.py`` and ``benchmarks/bench_knowledge.py --concurrency``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.knowledge.paper_pdfs import write_pdf

TOPICS = ("squeeze-and-excitation blocks", "GELU activations", "group normalization",
          "stochastic depth", "depthwise separable convolutions", "blur pooling",
          "layer normalization", "dense connectivity", "inverted residual blocks",
          "channel shuffle", "Swish activations", "dropout before the classifier")


def distinct_papers(directory: Path, n: int, tag: str) -> list[Path]:
    """``n`` small PDFs with different text (so none is a duplicate of another)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        text = (f"We propose network {tag}-{i} for image classification. In our network we use "
                f"{topic} in every stage, which improves top-1 accuracy by +{i % 5}.{i % 7}%. "
                f"Experiment {tag} {i}: the model is trained on the training split. ") * 4
        out.append(write_pdf(directory / f"{tag}_{i}.pdf", [[
            ("title", f"Study {tag} {i}: {topic.capitalize()} for Compact Networks"),
            ("heading", "1 Method"), ("text", text)]]))
    return out


def ingest_concurrently(home: Path, batches: list[list[Path]], timeout_s: float = 300
                        ) -> tuple[list[str], float]:
    """Run one ``archlore --data-dir HOME ingest BATCH`` process per batch, all at once;
    returns their outputs (stdout + stderr) and the wall time. Raises if one fails."""
    code = "import sys; from archlore.agent.cli.main import main; sys.argv[0] = 'archlore'; main()"
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, "--data-dir", str(home), "ingest",
                               *map(str, batch)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**_env(), "COLUMNS": "200"})
             for batch in batches]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout_s)
        if p.returncode != 0:
            raise RuntimeError(f"ingest exited {p.returncode}:\n{out}")
        outs.append(out)
    return outs, time.perf_counter() - t0


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env
