"""The ``archlore`` command line (Typer + rich)."""
