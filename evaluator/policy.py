"""Static policy: the first, cheap gate for untrusted candidate source.

The policy parses the source (it never runs it) and rejects anything outside a small
allow-list of imports, or touching names and attributes that lead out of "build a network
from tensors": eval/exec/open/``__import__``, dunder attribute chains such as
``().__class__.__base__.__subclasses__()``, and dangerous attributes reachable from allowed
modules (``torch.os``, ``torch.hub``, ``torch.load``, ``torch.utils.cpp_extension``...).

Python cannot be sandboxed by inspecting source alone, so this is defence in depth: the
worker's OS-level containment (evaluator.sandbox) must hold even when this gate is bypassed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

ALLOWED_IMPORTS = frozenset({
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init",
    "math", "functools", "itertools", "collections", "typing", "dataclasses", "__future__",
})

# Builtins that execute code, touch files or the interpreter, or reach objects by string.
DENIED_NAMES = frozenset({
    "eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars",
    "breakpoint", "input", "memoryview", "setattr", "delattr", "exit", "quit", "help",
    "copyright", "credits", "license",
    # module names that are never importable here; naming them is a red flag on its own
    "os", "sys", "subprocess", "socket", "ctypes", "pickle", "marshal", "importlib",
    "builtins", "shutil", "pathlib", "signal", "threading", "multiprocessing", "io",
    "gc", "inspect", "tempfile", "shelve", "pty", "urllib", "requests", "resource",
})

# Attributes that lead from allowed modules (or any object) to processes, files, native
# code, compilers or serialisation. Checked on every attribute access, whatever the object.
DENIED_ATTRIBUTES = frozenset({
    # torch sub-systems that load code, spawn processes, serialise or talk to the network
    "os", "sys", "hub", "load", "save", "utils", "cpp_extension", "multiprocessing",
    "distributed", "ops", "load_library", "serialization", "jit", "package", "classes",
    "compile", "compiler", "export", "onnx", "fx", "library", "from_file",
    "subprocess", "builtins", "importlib", "ctypes", "pickle", "marshal", "platform",
    # process, file and environment operations on whatever object
    "system", "popen", "spawn", "spawnv", "execv", "execve", "fork", "kill", "killpg",
    "environ", "getenv", "putenv", "remove", "unlink", "rmdir", "rename", "chmod",
    "write_text", "write_bytes", "read_text", "read_bytes", "tofile", "dump", "dumps",
    "loads", "exit", "_exit", "abort",
    # evaluation of strings hidden behind innocent-looking helpers
    "format", "format_map", "get_type_hints", "ForwardRef", "make_dataclass",
    "eval", "exec", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    # frames, code and tracebacks: a running generator's gi_frame.f_back walks up into the
    # evaluator's own frames, whose f_globals/f_locals can replace how the result is scored
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_back",
    "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
    "co_code", "func_globals",
    # modules re-exported by allowed ones that reach frames, every live object, threads or
    # the interpreter (torch.cuda.graphs.gc, dataclasses.inspect, torch.threading, ...), and
    # their entry points; test_policy walks the module graph to keep this list complete
    "gc", "inspect", "traceback", "threading", "types", "io", "logging", "bltns", "tunable",
    "socket", "shutil", "tempfile", "signal", "get_objects", "get_referrers",
    "get_referents", "currentframe", "getmembers", "getattr_static", "settrace",
    "setprofile", "FunctionType", "CodeType",
    # attribute access by a computed name (typing.operator.attrgetter('f_' + 'back'),
    # string.Formatter().get_field) and numpy (F.np: unchecked as_strided, f2py, ...)
    "operator", "attrgetter", "methodcaller", "string", "Formatter", "get_field",
    "np", "numpy",
})

_SELF_NAMES = frozenset({"self", "cls"})


@dataclass(frozen=True)
class PolicyViolation:
    """Why the policy rejected a candidate: source line (1-based), rule name and detail."""

    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.rule}: {self.detail}"


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _is_super_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super")


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.violations: list[PolicyViolation] = []

    def _deny(self, node: ast.AST, rule: str, detail: str) -> None:
        self.violations.append(PolicyViolation(getattr(node, "lineno", 0), rule, detail))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_IMPORTS:
                self._deny(node, "import-not-allowed", f"import of {alias.name!r} (allowed: "
                           f"{', '.join(sorted(ALLOWED_IMPORTS - {'__future__'}))})")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module not in ALLOWED_IMPORTS:
            self._deny(node, "import-not-allowed", f"from {'.' * node.level}{module} import ...")
            return
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if alias.name == "*":
                self._deny(node, "import-not-allowed", f"star import from {module!r}")
            elif alias.name in DENIED_ATTRIBUTES or alias.name in DENIED_NAMES:
                self._deny(node, "denied-attribute", f"import of {full!r}")
            elif alias.name.startswith("_") and module != "__future__":
                self._deny(node, "private-attribute", f"import of private name {full!r}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in DENIED_NAMES:
            self._deny(node, "denied-name", f"use of {node.id!r}")
        elif _is_dunder(node.id):
            self._deny(node, "dunder-name", f"use of {node.id!r}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if _is_dunder(attr):
            if not (attr == "__init__" and _is_super_call(node.value)):
                self._deny(node, "dunder-attribute",
                           f"access to {attr!r} (only super().__init__ is allowed)")
        elif attr in DENIED_ATTRIBUTES:
            self._deny(node, "denied-attribute", f"access to attribute {attr!r}")
        elif attr.startswith("_") and not (
            isinstance(node.value, ast.Name) and node.value.id in _SELF_NAMES
        ):
            self._deny(node, "private-attribute",
                       f"access to private attribute {attr!r} (allowed on self only)")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in {"getattr", "hasattr"}:
            name_arg = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name_arg, ast.Constant) and isinstance(name_arg.value, str)):
                self._deny(node, "getattr-nonliteral",
                           f"{node.func.id}() with a computed attribute name")
            elif (_is_dunder(name_arg.value) or name_arg.value in DENIED_ATTRIBUTES
                  or name_arg.value.startswith("_")):
                self._deny(node, "denied-attribute",
                           f"{node.func.id}() of attribute {name_arg.value!r}")
            # visit arguments but not the name itself: getattr is fine with a literal
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        # defining __init__/forward/__call__-free methods is fine; other dunders are not
        if _is_dunder(node.name) and node.name not in {"__init__", "__repr__"}:
            self._deny(node, "dunder-definition", f"definition of {node.name!r}")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Global(self, node: ast.Global) -> None:
        self._deny(node, "global-statement", "global statements are not allowed")


def check_source(code: str) -> list[PolicyViolation]:
    """All violations of the static policy in ``code`` (empty list: accepted).

    Also checks the candidate contract's shape: a module-level ``class Net``.
    """
    try:
        tree = ast.parse(code, filename="candidate.py")
    except SyntaxError as exc:
        return [PolicyViolation(exc.lineno or 0, "syntax-error", exc.msg or "invalid syntax")]
    except ValueError as exc:  # e.g. null bytes in the source
        return [PolicyViolation(0, "syntax-error", str(exc))]
    except (RecursionError, MemoryError) as exc:  # pathological nesting, e.g. "- - - ... 1"
        return [PolicyViolation(0, "too-complex",
                                f"source nested too deeply to check ({type(exc).__name__})")]
    checker = _Checker()
    try:
        checker.visit(tree)
    except RecursionError:
        return [PolicyViolation(0, "too-complex", "source nested too deeply to check")]
    has_net = any(isinstance(n, ast.ClassDef) and n.name == "Net" for n in tree.body)
    if not has_net:
        checker.violations.append(
            PolicyViolation(0, "missing-net", "no module-level `class Net(nn.Module)` found"))
    return sorted(checker.violations, key=lambda v: v.line)


def first_violation(code: str) -> PolicyViolation | None:
    """The first violation by line, or None when the source passes the policy."""
    violations = check_source(code)
    return violations[0] if violations else None
