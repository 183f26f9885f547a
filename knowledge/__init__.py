"""Design knowledge: papers -> design ideas (template + vector store).

Heavy parts load lazily: ``from knowledge import KnowledgeStore`` imports the store (numpy,
SQLite; onnxruntime on first embedding) only when asked for.
"""

from archlore.knowledge.schema import (
    ArchEdit,
    Category,
    Chunk,
    Direction,
    Effect,
    Idea,
    Paper,
    Provenance,
)

__all__ = ["ArchEdit", "Category", "Chunk", "Direction", "Effect", "Idea", "Paper", "Provenance",
           "KnowledgeStore", "Hit", "ChunkHit", "StoreError", "IngestSummary"]


def __getattr__(name: str):
    if name in ("KnowledgeStore", "Hit", "ChunkHit", "StoreError"):
        from archlore.knowledge import store

        return getattr(store, name)
    if name == "IngestSummary":
        from archlore.knowledge.ingest import IngestSummary

        return IngestSummary
    raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
