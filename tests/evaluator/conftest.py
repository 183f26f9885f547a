"""Shared fixtures for evaluator tests.

A fake API key is put in the environment at collection time, before any fork server starts,
so hostile candidates can show it never reaches a worker.
"""

from __future__ import annotations

import os

import pytest

from tests.evaluator.hostile_cases import FAKE_SECRET_ENV

os.environ.setdefault("ARCHLORE_TEST_API_KEY", FAKE_SECRET_ENV)


@pytest.fixture(scope="session")
def pool():
    from archlore.evaluator import EvaluatorPool

    with EvaluatorPool(workers=2, devices=["cpu"]) as p:
        yield p
