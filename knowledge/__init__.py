"""Design knowledge: papers -> design ideas (template + vector store)."""

from knowledge.schema import ArchEdit, Category, Chunk, Direction, Effect, Idea, Paper, Provenance

__all__ = ["ArchEdit", "Category", "Chunk", "Direction", "Effect", "Idea", "Paper", "Provenance"]
