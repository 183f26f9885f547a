"""Placeholder until its issue lands; replaced by the module's real commands."""

import typer


def register(app: typer.Typer) -> None:
    pass
