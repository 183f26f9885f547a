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


# Modules whose functions reach frames, objects, the interpreter, imports, raw memory,
# processes or files: none of them, nor any function defined in them, may be reachable from
# the allowed imports through attribute names the policy lets through.
INTERNALS = {"gc", "inspect", "sys", "builtins", "traceback", "threading", "_thread", "types",
             "ctypes", "_ctypes", "os", "posix", "importlib", "subprocess", "pickle",
             "marshal", "logging", "runpy", "code", "pdb", "bdb", "socket", "multiprocessing",
             "tracemalloc", "faulthandler", "signal", "_signal", "resource", "select", "fcntl",
             # attribute access by computed name, and numpy's unchecked as_strided
             "operator", "_operator", "string", "numpy"}
FILE_IO = {"io", "_io", "codecs", "_codecs", "posixpath", "genericpath", "shutil", "tempfile",
           "pathlib", "glob", "fnmatch", "tarfile", "zipfile", "gzip", "bz2", "lzma", "zlib",
           "mmap", "linecache", "tokenize", "fileinput", "sqlite3", "dbm", "shelve",
           "zipimport", "urllib", "http", "json"}
# builtins/types objects that are plain data types, harmless to reach
HARMLESS = {"GenericAlias", "RLock", "DType", "WrapperDescriptorType", "MethodWrapperType",
            "MethodDescriptorType", "Text", "MappingProxyType", "DynamicClassAttribute"}


def _reachable():
    """Every module, and every public callable of each, reachable from the allowed imports
    through attribute names the policy lets through (after loading what a worker loads)."""
    import importlib
    import types

    import archlore.evaluator.worker  # noqa: F401 - load what a worker has loaded (torch._dynamo...)
    from archlore.evaluator.policy import ALLOWED_IMPORTS, DENIED_ATTRIBUTES

    modules, callables = {}, {}
    frontier = [(importlib.import_module(m), m) for m in sorted(ALLOWED_IMPORTS - {"__future__"})]
    while frontier:
        module, path = frontier.pop(0)
        if module.__name__ in modules:
            continue
        modules[module.__name__] = path
        for name, value in list(vars(module).items()):
            if name.startswith("_") or name in DENIED_ATTRIBUTES:
                continue
            if isinstance(value, types.ModuleType):
                frontier.append((value, f"{path}.{name}"))
            elif callable(value):
                callables[f"{path}.{name}"] = value
    return modules, callables


def test_interpreter_internals_and_file_io_are_unreachable_through_allowed_modules():
    """Walk every module and callable reachable from the allowed imports: none may reach
    frames, objects, the interpreter or files (gc.get_objects, inspect.stack, codecs.open via
    torch.autograd.profiler_util.json, gzip.open via torch.profiler, ctypes.cast via
    torch.xpu all existed; the OS layer cannot see in-process tampering)."""
    import builtins

    modules, callables = _reachable()
    assert len(modules) > 100  # the walk really walked
    bad = INTERNALS | FILE_IO
    reached = {n: p for n, p in modules.items() if n.split(".")[0] in bad}
    assert not reached, reached
    forbidden = {id(getattr(builtins, n)) for n in (
        "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "vars", "globals",
        "locals", "__import__", "type", "object", "breakpoint", "input", "memoryview")}
    leaks = {}
    for path, value in callables.items():
        module = (getattr(value, "__module__", None) or "").split(".")[0]
        if id(value) in forbidden or (module in bad and path.rsplit(".", 1)[1] not in HARMLESS):
            leaks[path] = module
    assert not leaks, leaks


@pytest.mark.parametrize("snippet,rule", [
    # a match class pattern reads attributes by keyword
    ("match len:\n    case object(__globals__=g):\n        pass", "dunder-attribute"),
    ("match len:\n    case int(real=r, f_back=f):\n        pass", "denied-attribute"),
    ("match len:\n    case int(_private=p):\n        pass", "private-attribute"),
    # the private-attribute exemption is for a method's own first parameter only
    ("self = functools\nx = self._lru_cache_wrapper", "self-rebinding"),
    ("def f(self):\n    return self._lru_cache_wrapper", "private-attribute"),
    ("for cls in [functools]:\n    pass", "self-rebinding"),
    ("f = lambda self: self._x", "self-rebinding"),
    ("import functools as self", "self-rebinding"),
    ("class A:\n    def f(self):\n        return self._make\nA.f(functools)", "unbound-method"),
    ("x = type(len)", "denied-name"),
    # setting attributes by a string
    ("functools.update_wrapper(torch.Tensor, len, assigned=('__int__',))", "denied-attribute"),
    ("w = functools.wraps", "denied-attribute"),
    # torch modes, overrides, global hooks
    ("m = torch.overrides.TorchFunctionMode", "denied-attribute"),
    ("h = nn.modules.module.register_module_forward_hook", "denied-attribute"),
    ("h = torch.autograd.graph.saved_tensors_hooks", "denied-attribute"),
    # monkeypatching what the evaluator itself uses
    ("torch.Tensor.sum = len", "attribute-assignment"),
    ("t = torch.Tensor\nt.numel = len", "attribute-assignment"),
    ("[torch.Tensor][0].numel = len", "attribute-assignment"),
    ("del torch.argmax", "attribute-assignment"),
    # module paths that reach file I/O, raw memory or imports
    ("o = torch.autograd.profiler_util.json.codecs.open", "denied-attribute"),
    ("o = torch.profiler.profiler.gzip.open", "denied-attribute"),
    ("c = torch.xpu.cast", "denied-attribute"),
    ("s = torch.cuda.amp.common.find_spec('os')", "denied-attribute"),
])
def test_new_bypass_classes_are_rejected(snippet, rule):
    code = OK_HEADER + "import functools\nclass Net(nn.Module):\n    pass\n" + snippet + "\n"
    violations = check_source(code)
    assert rule in {v.rule for v in violations}, violations


def test_self_private_attributes_the_candidate_defines_still_pass():
    code = OK_HEADER + (
        "class Block(nn.Module):\n"
        "    def __init__(self, c):\n        super().__init__()\n        self._c = c\n"
        "        self.conv = nn.Conv2d(c, c, 3, padding=1)\n"
        "    def _act(self, x):\n        return F.relu(x)\n"
        "    def forward(self, x):\n        return self._act(self.conv(x)) * self._c\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes=10, in_channels=3):\n        super().__init__()\n"
        "        self.block = Block(in_channels)\n        self.fc = nn.Linear(in_channels, num_classes)\n"
        "        self.fc.bias.data.zero_()\n"
        "    def forward(self, x):\n        return self.fc(self.block(x).mean(dim=(2, 3)))\n")
    assert check_source(code) == []
