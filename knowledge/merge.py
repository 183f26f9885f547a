"""Near-duplicate detection and merging of ideas.

Two ideas are the same idea when they share an id, or — within one category — when their
embedded text is very similar (cosine >= ``COSINE_THRESHOLD``), or their names are near-identical
(MinHash Jaccard of character 3-grams >= ``NAME_JACCARD``), or one name's words contain the
other's and the texts are still close (cosine >= ``CONTAINED_COSINE``: "GELU" vs "GELU
activation"). Thresholds measured with MiniLM on the lexicon: distinct concepts of one category
reach at most 0.73 (LayerNorm vs GroupNorm); paraphrases of one concept 0.79-0.86. Merging keeps the existing idea and
adds every provenance of the newcomer; structured edits are adopted only when the existing idea
has none.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from archlore.knowledge.schema import Category, Idea

COSINE_THRESHOLD = 0.82
CONTAINED_COSINE = 0.7
NAME_JACCARD = 0.8
_NUM_PERM = 64
_CATEGORY_CODES = {c: i for i, c in enumerate(Category)}


def idea_text(idea: Idea) -> str:
    """The text that represents an idea for embedding and search."""
    parts = [idea.name, idea.operator, idea.category.value.replace("_", " "), idea.description]
    return ". ".join(p for p in parts if p)


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def _name_words(name: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", name.lower()))


def name_minhash(name: str):
    """MinHash (datasketch) of the name's character 3-grams."""
    from datasketch import MinHash

    key = _name_key(name)
    grams = {key[i:i + 3] for i in range(max(1, len(key) - 2))}
    mh = MinHash(num_perm=_NUM_PERM, seed=1)
    for g in grams:
        mh.update(g.encode())
    return mh


_BLAS_CONTROLLER: Any = None  # threadpoolctl controller, False when unavailable


def matvec(matrix: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """(n, d) @ (d,) on ONE BLAS thread: a mat-vec this small gains nothing from threads, and
    on a busy 2-core machine multi-threaded BLAS took 10-13 ms instead of 1.2 ms at n=10^4."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController  # comes with scikit-learn

            _BLAS_CONTROLLER = ThreadpoolController()
        except ImportError:
            _BLAS_CONTROLLER = False
    if not _BLAS_CONTROLLER:
        return matrix @ vec
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        return matrix @ vec


class DuplicateIndex:
    """Ideas with their unit vectors, answering "which known idea is this one?" in sub-linear
    time for ids and names (dicts, MinHash LSH) and one mat-vec for embeddings."""

    def __init__(self, dim: int) -> None:
        from datasketch import MinHashLSH

        self.dim = dim
        self.ideas: list[Idea] = []
        self._matrix = np.zeros((64, dim), np.float32)
        self._by_id: dict[str, int] = {}
        self._by_name: dict[str, int] = {}
        self._categories: list[str] = []
        self._cat_codes = np.zeros(64, np.int16)  # index of the category in the vocabulary
        self._lsh = MinHashLSH(threshold=NAME_JACCARD, num_perm=_NUM_PERM)

    @property
    def matrix(self) -> np.ndarray:
        """(n, dim) unit vectors, row i <-> ideas[i]."""
        return self._matrix[: len(self.ideas)]

    def category_mask(self, category: Category) -> np.ndarray:
        """(n,) bool: which ideas are of ``category``."""
        return self._cat_codes[: len(self.ideas)] == _CATEGORY_CODES[category]

    def index_of(self, idea_id: str) -> int | None:
        return self._by_id.get(idea_id)

    def add(self, idea: Idea, vec: np.ndarray) -> int:
        n = len(self.ideas)
        if n == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
        self._matrix[n] = vec
        if n == len(self._cat_codes):
            self._cat_codes = np.concatenate([self._cat_codes, np.zeros_like(self._cat_codes)])
        self._cat_codes[n] = _CATEGORY_CODES[idea.category]
        self.ideas.append(idea)
        self._by_id[idea.id] = n
        self._by_name.setdefault(_name_key(idea.name), n)
        self._categories.append(idea.category.value)
        self._lsh.insert(str(n), name_minhash(idea.name))
        return n

    def set_vector(self, i: int, vec: np.ndarray) -> None:
        self._matrix[i] = vec

    def find(self, idea: Idea, vec: np.ndarray) -> int | None:
        """Index of the idea that ``idea`` duplicates, or None. ``vec``: (dim,) unit vector."""
        if idea.id in self._by_id:
            return self._by_id[idea.id]
        if not self.ideas:
            return None
        cat = idea.category.value
        i = self._by_name.get(_name_key(idea.name))
        if i is not None and self._categories[i] == cat:
            return i
        for key in self._lsh.query(name_minhash(idea.name)):
            if self._categories[int(key)] == cat:
                return int(key)
        sims = np.where(self.category_mask(idea.category), matvec(self.matrix, vec), -1.0)
        best = int(np.argmax(sims))
        if sims[best] >= COSINE_THRESHOLD:
            return best
        words = _name_words(idea.name)
        for j in np.flatnonzero(sims >= CONTAINED_COSINE):
            other = _name_words(self.ideas[j].name)
            if words and other and (words <= other or other <= words):
                return int(j)
        return None


def merge_into(existing: Idea, new: Idea) -> bool:
    """Add ``new``'s provenance (and missing fields) to ``existing``; True if anything changed."""
    changed = False
    have = {(p.paper_id, p.page, p.quote) for p in existing.provenance}
    for prov in new.provenance:
        key = (prov.paper_id, prov.page, prov.quote)
        if key not in have:
            existing.provenance.append(prov)
            have.add(key)
            changed = True
    if not existing.applicable_offline and new.applicable_offline:
        existing.edits = list(new.edits)
        existing.cell_ops = list(new.cell_ops)
        changed = True
    if not existing.effect.reported and new.effect.reported:
        existing.effect.reported = new.effect.reported
        changed = True
    return changed
