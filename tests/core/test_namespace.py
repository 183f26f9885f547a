"""archlore installs one top-level import package and works beside a user's own modules."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_only_archlore_is_installed_at_top_level():
    dist = md.distribution("archlore")
    top = (dist.read_text("top_level.txt") or "").split()
    assert top == ["archlore"]


def test_every_subpackage_is_listed_for_the_wheel():
    """A folder with an __init__.py that pyproject does not list would be missing from a wheel."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {"archlore"}
    for part, folder in cfg["package-dir"].items():
        if part == "archlore":
            continue
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((part, *rel)))
    assert found == listed


def test_api_works_beside_a_users_search_py_and_agent_package(tmp_path):
    (tmp_path / "search.py").write_text("raise SystemExit('user search.py was imported')\n")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "__init__.py").write_text("raise SystemExit('user agent/ was imported')\n")
    code = ("from archlore.search.registry import list_strategies, list_spaces\n"
            "from archlore.agent.mutators import make_mutator\n"
            "import search, agent\n"
            "print(list_strategies(), list_spaces())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    # the user's own modules are what `import search` gives; archlore's API still works
    assert "user search.py was imported" in out.stderr, out.stderr
    code = code.replace("import search, agent\n", "")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "fairnad" in out.stdout and "nb201" in out.stdout
