"""The static policy accepts ordinary model code and names line and rule when it rejects."""

from __future__ import annotations

from pathlib import Path

import pytest
from archlore.evaluator.policy import check_source, first_violation

OK_HEADER = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"


def test_example_and_common_idioms_pass():
    example = (Path(__file__).parents[2] / "examples" / "resnet_tiny.py").read_text()
    assert check_source(example) == []
    code = OK_HEADER + (
        "import math\nfrom functools import partial\nfrom typing import Optional\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes=10, in_channels=3):\n"
        "        super(Net, self).__init__()\n"
        "        self.layers = nn.ModuleList([self._make(i) for i in range(2)])\n"
        "        self.act = getattr(nn, 'ReLU')()\n"
        "    def _make(self, i):\n        return nn.Identity()\n"
        "    def forward(self, x):\n        return F.relu(x).flatten(1)\n")
    assert check_source(code) == []


@pytest.mark.parametrize("snippet,rule", [
    ("import os", "import-not-allowed"),
    ("from torch.utils import data", "import-not-allowed"),
    ("from torch import hub", "denied-attribute"),
    ("from . import x", "import-not-allowed"),
    ("x = eval('1')", "denied-name"),
    ("x = __import__('os')", "denied-name"),
    ("x = torch.os", "denied-attribute"),
    ("x = torch.load", "denied-attribute"),
    ("x = torch._C", "private-attribute"),
    ("x = nn.Module.__subclasses__", "dunder-attribute"),
    ("x = getattr(torch, name)", "getattr-nonliteral"),
    ("x = getattr(torch, '__dict__')", "denied-attribute"),
    ("x = '{0.__class__}'.format(1)", "denied-attribute"),
    ("global y", "global-statement"),
])
def test_rejections_name_line_and_rule(snippet, rule):
    code = OK_HEADER + "class Net(nn.Module):\n    pass\n" + snippet + "\n"
    violation = first_violation(code)
    assert violation is not None and violation.rule == rule
    assert violation.line == 6
    assert str(violation).startswith(f"line 6: {rule}: ")


def test_syntax_error_and_missing_net():
    (violation,) = check_source("def f(:\n")
    assert (violation.rule, violation.line) == ("syntax-error", 1)
    assert first_violation(OK_HEADER + "class Model(nn.Module):\n    pass\n").rule == "missing-net"


@pytest.mark.parametrize("expression", ["-" * 100_000 + "1", "a" + ".b" * 5_000])
def test_pathologically_nested_source_is_a_violation_not_a_crash(expression):
    """Deep nesting makes ast.parse/the visitor raise MemoryError/RecursionError; the caller
    must get a violation (and so a rejected Evaluation), never the exception."""
    violation = first_violation(OK_HEADER + "class Net(nn.Module):\n    pass\nx = " + expression)
    assert violation is not None and violation.rule == "too-complex"


def test_interpreter_internals_are_unreachable_through_allowed_modules():
    """Walk every module reachable from the allowed imports through attribute names the
    policy lets through: none may be one that reaches frames, objects or the interpreter
    (gc.get_objects or inspect.stack would let a candidate rewrite how it is scored, which
    no OS layer can see; e.g. torch.cuda.graphs.gc and dataclasses.inspect exist)."""
    import importlib
    import types

    import archlore.evaluator.worker  # noqa: F401 - load what a worker has loaded (torch._dynamo...)
    from archlore.evaluator.policy import ALLOWED_IMPORTS, DENIED_ATTRIBUTES

    internals = {"gc", "inspect", "sys", "builtins", "traceback", "threading", "_thread",
                 "types", "ctypes", "os", "posix", "importlib", "subprocess", "pickle",
                 "marshal", "logging", "runpy", "code", "pdb", "bdb", "socket",
                 "multiprocessing", "tracemalloc", "faulthandler", "io",
                 # attribute access by computed name, and numpy's unchecked as_strided
                 "operator", "_operator", "string", "numpy"}
    paths = {}
    frontier = [(importlib.import_module(m), m) for m in sorted(ALLOWED_IMPORTS - {"__future__"})]
    while frontier:
        module, path = frontier.pop(0)
        if module.__name__ in paths:
            continue
        paths[module.__name__] = path
        for name, value in list(vars(module).items()):
            if (isinstance(value, types.ModuleType) and not name.startswith("_")
                    and name not in DENIED_ATTRIBUTES):
                frontier.append((value, f"{path}.{name}"))
    reached = {n: p for n, p in paths.items() if n.split(".")[0] in internals}
    assert not reached, reached
