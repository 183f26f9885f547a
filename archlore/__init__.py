"""archlore: neural architecture search driven by design knowledge from papers.

The only top-level import package this distribution installs. Its parts live at the
repository's top level (``agent/``, ``search/``, ``evaluator/``, ``knowledge/``, ``corpora/``)
and are mapped in as ``archlore.<part>`` by ``package-dir`` in pyproject.toml.
"""

__version__ = "0.1.0"
