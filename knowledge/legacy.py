"""Stores of the previous version: ``ideas.json`` / ``papers.json`` mirrors and a chromadb
``chroma/`` directory with a ``chunks`` collection. Read once, on open, to migrate them into
``store.sqlite`` (see ``knowledge.store``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from archlore.knowledge.schema import Chunk, Idea, Paper

log = logging.getLogger(__name__)


def read_legacy(path: Path, error: type[Exception]) -> tuple[list[Idea], list[Paper], dict[str, Any]]:
    """The ideas, papers and meta of a previous-version store (``ideas.json`` /
    ``papers.json``); ``error`` (one line naming the file) when one is not valid."""
    current = path / "ideas.json"
    try:
        ideas: list[Idea] = []
        meta: dict[str, Any] = {}
        if current.exists():
            data = json.loads(current.read_text())
            meta = dict(data.get("meta", {}))
            ideas = [Idea.model_validate(raw) for raw in data.get("ideas", [])]
        current = path / "papers.json"
        papers = ([Paper.model_validate(raw) for raw in json.loads(current.read_text())]
                  if current.exists() else [])
    except (ValueError, TypeError, AttributeError) as exc:  # JSON / pydantic / wrong shape
        raise error(f"{current} is not valid ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); fix it or move it away") from None
    return ideas, papers, meta


def legacy_chunks(path: Path) -> tuple[list[Chunk], np.ndarray]:
    """Chunks of a previous-version chromadb store; none (with a warning) if unreadable."""
    if not (path / "chroma").is_dir():
        return [], np.zeros((0, 0), np.float32)
    try:
        import chromadb
        from chromadb.config import Settings

        client = chromadb.PersistentClient(path=str(path / "chroma"),
                                           settings=Settings(anonymized_telemetry=False))
        col = client.get_collection("chunks")
        got = col.get(include=["documents", "metadatas", "embeddings"])
        chunks = [Chunk(id=cid, paper_id=str(m["paper_id"]), page=int(m["page"]),
                        section=str(m.get("section", "")), text=doc)
                  for cid, doc, m in zip(got["ids"], got["documents"], got["metadatas"],
                                         strict=True)]
        return chunks, np.asarray(got["embeddings"], np.float32)
    except Exception as exc:
        log.warning("archlore: paper chunks of the old store in %s could not be migrated (%s); "
                    "re-ingest the papers to search their text", path / "chroma", exc)
        return [], np.zeros((0, 0), np.float32)
