"""Where archlore keeps its state: one data directory (``--data-dir`` / ``ARCHLORE_HOME``)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

_override: Path | None = None


def set_data_dir(path: str | Path | None) -> None:
    global _override
    _override = Path(path).expanduser() if path else None


def data_dir() -> Path:
    """The data directory, created on first use.

    Order: ``--data-dir`` option, ``ARCHLORE_HOME`` env var, the platform's user data dir.
    Layout: ``knowledge/`` (chromadb store, papers), ``runs/NAME/`` (one per search run),
    ``cache/``.
    """
    path = _override or Path(os.environ.get("ARCHLORE_HOME") or user_data_dir("archlore"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def knowledge_dir() -> Path:
    p = data_dir() / "knowledge"
    p.mkdir(parents=True, exist_ok=True)
    return p


def runs_dir() -> Path:
    p = data_dir() / "runs"
    p.mkdir(parents=True, exist_ok=True)
    return p
