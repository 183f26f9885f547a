"""Shared helpers for the NB201 tests: where the table is, or a clear skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def table_path() -> Path:
    """``$ARCHLORE_NB201_TABLE`` or ``../shared/data/nb201.csv`` beside the repo; skip if absent."""
    env = os.environ.get("ARCHLORE_NB201_TABLE")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "nb201.csv"
    if not path.is_file():
        pytest.skip(f"NAS-Bench-201 table not found at {path} (set ARCHLORE_NB201_TABLE)")
    return path
