"""Evaluation backends (``list_backends()``): ``pool`` (sandboxed workers on this machine),
``table`` (a benchmark table), ``ray`` (a Ray cluster, extra ``archlore[ray]``)."""

from archlore.search.backends.base import EvaluationBackend, resolved

__all__ = ["EvaluationBackend", "resolved"]
