"""Jinja templates of run reports (package data)."""
