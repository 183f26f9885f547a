"""Prompt templates (package data). ``render(name, **values)`` fills ``$placeholders``."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def load(name: str) -> Template:
    """Template ``agent/prompts/<name>.md``; a missing file raises FileNotFoundError."""
    path = resources.files(__package__).joinpath(f"{name}.md")
    if not path.is_file():
        raise FileNotFoundError(f"no prompt template {name!r} in agent/prompts/")
    return Template(path.read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """Fill a template; unknown placeholders stay as written. Values are inserted verbatim
    (parent code must reach the model exactly, or its SEARCH blocks will not match)."""
    text = load(name).safe_substitute({k: "" if v is None else str(v) for k, v in values.items()})
    return text.strip() + "\n"
