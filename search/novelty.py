"""Novelty filter: reject near-duplicate candidates before they cost an evaluation.

Code candidates: the source is canonicalised (parsed with ``ast`` so comments, docstrings
and formatting vanish; names the code itself defines -- classes, functions, arguments,
variables, ``self.<attr>`` fields, import aliases -- renamed to ``v0, v1, ...`` in order of
first use) and serialised as a walk of its syntax tree. Library names (``nn.Conv2d``, ``F.gelu``),
keyword arguments and literals are kept, so a renamed or reformatted copy is *identical*.
Near-duplicates: k-token shingles (own names read as one placeholder, so moving a definition
only touches the shingles around it) are MinHashed, and a datasketch ``MinHashLSH`` index
finds stored candidates whose estimated Jaccard similarity reaches the threshold; such a hit
counts only when the settings also match (``content_hash``), so a changed channel count or
activation passes however small a share of the file it is (see ``NoveltyFilter``).

Table spaces (no code): exact match on the canonical architecture string.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import keyword
import re
import zlib

import numpy as np
from archlore.evaluator.policy import parse_source
from datasketch import MinHash, MinHashLSH

_KEEP = set(dir(builtins)) | set(keyword.kwlist) | {"self", "super"}
_SMALL_GROUP = 64  # same-settings groups up to this size are scanned without the LSH
_RENAMED = re.compile(r"v[0-9]+")
_DELIMITERS = {")"}


_NAME_FIELDS = {"id", "attr", "arg", "name", "asname"}
_SKIP_NODES = (ast.Load, ast.Store, ast.Del)
_DOC_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(node: ast.AST) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _defined_name(node: ast.AST) -> str | None:
    """The identifier ``node`` defines in the code itself (a renamable name), if any."""
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
        return node.attr
    if isinstance(node, ast.alias):
        return node.asname
    return None


def canonical_tokens(code: str) -> list[str]:
    """Token list of the canonical form of ``code``: a pre-order walk of its syntax tree
    (node types, names, literals), so formatting and comments cannot matter; docstrings are
    dropped and the code's own names renamed ``v0, v1, ...`` by first use. Unparseable code
    falls back to its whitespace-split words (the evaluator rejects it anyway)."""
    try:
        tree = parse_source(code)
    except (SyntaxError, ValueError):
        return code.split()
    out: list[str] = []
    name_at: list[int] = []  # positions in ``out`` holding identifiers
    defined: set[str] = set()

    def walk(node: ast.AST) -> None:  # one pass: tokens, identifier positions, definitions
        out.append(type(node).__name__)
        own = _defined_name(node)
        if own:
            defined.add(own)
        for fname, value in ast.iter_fields(node):
            if isinstance(value, ast.AST):
                if not isinstance(value, _SKIP_NODES):
                    walk(value)
            elif isinstance(value, list):
                if fname == "body" and value and isinstance(node, _DOC_OWNERS) \
                        and _is_docstring(value[0]):
                    value = value[1:]
                for item in value:
                    if isinstance(item, ast.AST):
                        walk(item)
                    elif item is not None:
                        out.append(repr(item))
                out.append(")")
            elif value is None or fname in ("type_comment", "kind", "level"):
                continue
            elif fname in _NAME_FIELDS and isinstance(value, str):
                name_at.append(len(out))
                out.append(value)
            else:
                out.append(str(value) if fname == "module" else repr(value))

    walk(tree)
    renamable = defined - _KEEP
    mapping: dict[str, str] = {}
    for i in name_at:
        if out[i] in renamable:
            out[i] = mapping.setdefault(out[i], f"v{len(mapping)}")
    return out


def canonical_hash(code: str) -> str:
    """Hash of the canonical token stream: equal for renamed / reformatted copies."""
    return _digest(canonical_tokens(code))


def _digest(tokens: list[str]) -> str:
    return hashlib.sha256("\x1f".join(tokens).encode()).hexdigest()[:16]


def content_hash(tokens: list[str]) -> str:
    """Hash of the multiset of the settings in a canonical token stream: literals, library
    names (``Conv2d``, ``gelu``), keyword names and operators -- everything except the
    renamed identifiers and delimiters. Reordered or renamed code keeps it; a changed
    channel count or activation changes it."""
    kept = sorted(t for t in tokens if not _RENAMED.fullmatch(t) and t not in _DELIMITERS)
    return _digest(kept)


def shingles(tokens: list[str], k: int) -> list[bytes]:
    """k-token shingles (the whole stream when it is shorter than k), as bytes."""
    if len(tokens) < k:
        return ["\x1f".join(tokens).encode()]
    return ["\x1f".join(tokens[i:i + k]).encode() for i in range(len(tokens) - k + 1)]


_TOKEN_HASH: dict[str, int] = {}
_PRIME = np.uint64(1_000_003)
_MASK32 = np.uint64(0xFFFFFFFF)


def _identity(x: int) -> int:
    return x


def shingle_hashes(tokens: list[str], k: int) -> np.ndarray:
    """32-bit hashes of the k-token shingles, own names read as one placeholder ``ID``
    (so moving a definition only touches the shingles around it). Tokens are CRC32-hashed
    once and combined with a polynomial rolling hash, vectorised: deterministic across
    processes (resume rebuilds the same index), unlike Python's salted ``hash``."""
    th = np.fromiter((_TOKEN_HASH.get(t) or _TOKEN_HASH.setdefault(
        t, zlib.crc32(("ID" if _RENAMED.fullmatch(t) else t).encode()))
        for t in tokens), dtype=np.uint64, count=len(tokens))
    n = max(1, len(th) - k + 1)
    h = np.zeros(n, dtype=np.uint64)
    for j in range(min(k, len(th))):
        h = (h * _PRIME + th[j:j + n]) & _MASK32
    return h


class NoveltyFilter:
    """Near-duplicate detection over code (MinHash LSH) or arch strings (exact).

    A code candidate duplicates a stored one when (a) their canonical token streams are equal
    (renamed / reformatted copies), or (b) the LSH finds a stored candidate whose estimated
    Jaccard similarity of canonical shingles is >= ``threshold`` *and* whose settings
    (``content_hash``: literals, library names, operators) are the same -- structurally
    near-identical code that computes the same thing (reordered statements, dead code).
    A real change (one channel count, another activation) changes the settings and passes,
    however small its share of a long file. Candidates are grouped by settings, so a query
    whose settings are new is answered by one dict lookup; groups up to 64 are compared
    directly, larger ones through the LSH.

    Keys are candidate ids. Deterministic (fixed MinHash seed), so a resumed run rebuilds
    the same index by re-adding stored candidates in id order.
    """

    def __init__(self, threshold: float = 0.9, num_perm: int = 128, shingle: int = 5) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"novelty threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise ValueError(f"shingle size must be >= 1, got {shingle}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._hashvalues: dict[str, np.ndarray] = {}  # key -> MinHash values (verification)
        self._content: dict[str, str] = {}  # key -> content hash
        self._by_content: dict[str, list[int]] = {}  # content hash -> keys
        self._exact: dict[str, int] = {}  # canonical arch string / canonical code hash -> key
        # shingles arrive pre-hashed (``shingle_hashes``): identity hash function
        self._template = MinHash(num_perm=num_perm, seed=1, hashfunc=_identity)

    def __len__(self) -> int:
        return len(self._exact)

    def signature(self, code: str) -> tuple[str, str, MinHash]:
        """(canonical hash, content hash, MinHash) of one code candidate."""
        return self.signature_of_tokens(canonical_tokens(code))

    def signature_of_tokens(self, tokens: list[str]) -> tuple[str, str, MinHash]:
        """``signature`` from an already canonical token stream."""
        m = self._template.copy()
        m.update_batch(shingle_hashes(tokens, self.shingle))
        return _digest(tokens), content_hash(tokens), m

    @staticmethod
    def _arch_key(arch: str) -> str:
        return "arch:" + "".join(arch.split())

    def check(self, code: str | None = None, arch: str | None = None,
              signature: tuple[str, str, MinHash] | None = None) -> int | None:
        """Key of a stored candidate this one duplicates, or None if it is novel.
        ``signature`` (from ``signature``) skips re-canonicalising ``code``."""
        if code is None and signature is None:
            return self._exact.get(self._arch_key(arch)) if arch else None
        canon, content, m = signature or self.signature(code)
        exact = self._exact.get("code:" + canon)
        if exact is not None or self.threshold >= 1.0:
            return exact
        group = self._by_content.get(content)
        if not group:  # nothing stored has the same settings: novel without an index lookup
            return None
        if len(group) <= _SMALL_GROUP:  # few same-settings candidates: compare them directly
            keys = group
        else:
            keys = [int(k) for k in self._lsh.query(m) if self._content[k] == content]
        if not keys:
            return None
        hv = np.stack([self._hashvalues[str(k)] for k in keys])
        sims = np.mean(hv == m.hashvalues, axis=1)
        ok = np.flatnonzero(sims >= self.threshold)
        if not len(ok):
            return None
        best = max(ok, key=lambda i: (sims[i], -keys[i]))
        return int(keys[best])

    def add(self, key: int, code: str | None = None, arch: str | None = None,
            signature: tuple[str, str, MinHash] | None = None) -> None:
        if code is None and signature is None:
            if arch:
                self._exact.setdefault(self._arch_key(arch), key)
            return
        canon, content, m = signature or self.signature(code)
        self._exact.setdefault("code:" + canon, key)
        skey = str(key)
        if skey in self._hashvalues:
            return
        self._hashvalues[skey] = m.hashvalues
        self._content[skey] = content
        self._by_content.setdefault(content, []).append(key)
        self._lsh.insert(skey, m)

    def check_and_add(self, key: int, code: str | None = None,
                      arch: str | None = None) -> int | None:
        """``check`` then, if novel, ``add``; returns the duplicate's key or None."""
        sig = self.signature(code) if code is not None else None
        dup = self.check(code, arch, signature=sig)
        if dup is None:
            self.add(key, code, arch, signature=sig)
        return dup


def exact_jaccard(a: set, b: set) -> float:
    """Plain Jaccard similarity of two sets (the benchmark's reference)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def shingle_ids(code: str, k: int) -> np.ndarray:
    """Sorted unique shingle hashes of the code (for exact-Jaccard scans)."""
    return np.unique(shingle_hashes(canonical_tokens(code), k))
