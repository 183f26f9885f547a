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
import threading
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
    # type(obj).method(other) calls a method with another object as self
    "type", "object",
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
    # setting attributes by a string (update_wrapper(torch.Tensor, f, assigned=("__int__",)))
    "update_wrapper", "wraps", "WRAPPER_ASSIGNMENTS", "WRAPPER_UPDATES",
    # torch modes, overrides and global hooks: code that runs inside every later torch call
    # or module call, including the evaluator's own (a mode kept pushed by a suspended
    # generator survives DisableTorchFunctionSubclass)
    "overrides", "TorchFunctionMode", "TorchDispatchMode", "BaseTorchFunctionMode",
    "graph", "saved_tensors_hooks", "register_multi_grad_hook", "profiler", "profiler_util",
    "register_module_forward_hook", "register_module_forward_pre_hook",
    "register_module_full_backward_hook", "register_module_full_backward_pre_hook",
    "register_module_backward_hook", "register_module_buffer_registration_hook",
    "register_module_module_registration_hook", "register_module_parameter_registration_hook",
    # modules reachable from allowed ones that read or write files (torch.autograd.
    # profiler_util.json.codecs.open, torch.profiler.profiler.gzip.open, torch.glob...);
    # test_policy walks every module and callable reachable to keep this list complete
    "open", "fdopen", "codecs", "gzip", "zlib", "glob", "json", "linecache", "tokenize",
    "copyreg", "pkgutil", "sysconfig", "site", "warnings", "path", "weakref", "finalize",
    # ctypes re-exported by torch.xpu (cast/pointer: raw memory), imports by spec
    # (torch.cuda.amp.common.find_spec), binding a function to another self (MethodType)
    "xpu", "byref", "cast", "pointer", "c_void_p", "addressof", "string_at", "memmove",
    "find_spec", "loader", "load_module", "exec_module", "module_from_spec", "import_module",
    "MethodType", "signature",
})

# Names a candidate may never bind: private attributes are allowed on these only.
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


def _root(node: ast.AST) -> ast.Name | None:
    """The Name an attribute/subscript chain starts from; None when it passes a call or
    anything else (``f().x``, ``[t][0].x``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node if isinstance(node, ast.Name) else None


class _Facts(ast.NodeVisitor):
    """What the source itself defines: imported names, local classes and their methods,
    private attribute names it assigns or defines, and the methods' own ``self`` params."""

    def __init__(self) -> None:
        self.imported: set[str] = set()
        self.classes: dict[str, set[str]] = {}
        self.private: set[str] = set()
        self.self_args: set[int] = set()  # id() of the ast.arg nodes that may be self/cls

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imported.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.imported.add(alias.asname or alias.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        methods = self.classes.setdefault(node.name, set())
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if item.name.startswith("_"):
                    self.private.add(item.name)
                plain = not any(isinstance(d, ast.Name) and d.id == "staticmethod"
                                for d in item.decorator_list)
                args = item.args.posonlyargs + item.args.args
                if plain and args and args[0].arg in _SELF_NAMES:
                    self.self_args.add(id(args[0]))
                methods.add(item.name)
            for target in getattr(item, "targets", [getattr(item, "target", None)]):
                if isinstance(target, ast.Name) and target.id.startswith("_"):
                    self.private.add(target.id)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if (isinstance(node.ctx, ast.Store) and node.attr.startswith("_")
                and isinstance(node.value, ast.Name) and node.value.id in _SELF_NAMES):
            self.private.add(node.attr)
        self.generic_visit(node)


class _Checker(ast.NodeVisitor):
    def __init__(self, facts: _Facts) -> None:
        self.violations: list[PolicyViolation] = []
        self.facts = facts
        # names that alias something imported (t = torch.Tensor): never assigned through
        self.aliases = set(facts.imported)

    def _deny(self, node: ast.AST, rule: str, detail: str) -> None:
        self.violations.append(PolicyViolation(getattr(node, "lineno", 0), rule, detail))

    def _bind(self, node: ast.AST, name: str | None) -> None:
        if name in _SELF_NAMES:
            self._deny(node, "self-rebinding", f"binding the name {name!r} (it may only be a "
                       f"method's first parameter: private attributes are allowed on it)")

    def _check_attr_name(self, node: ast.AST, attr: str, value: ast.AST | None) -> None:
        if _is_dunder(attr):
            if not (attr == "__init__" and value is not None and _is_super_call(value)):
                self._deny(node, "dunder-attribute",
                           f"access to {attr!r} (only super().__init__ is allowed)")
        elif attr in DENIED_ATTRIBUTES:
            self._deny(node, "denied-attribute", f"access to attribute {attr!r}")
        elif attr.startswith("_") and not (
            isinstance(value, ast.Name) and value.id in _SELF_NAMES
            and attr in self.facts.private
        ):
            self._deny(node, "private-attribute",
                       f"access to private attribute {attr!r} (allowed on self only, for "
                       f"names the candidate defines)")
        elif (isinstance(value, ast.Name) and attr in self.facts.classes.get(value.id, ())
              and not _is_dunder(attr)):
            self._deny(node, "unbound-method", f"{value.id}.{attr} through the class (a "
                       f"method called with another object as self)")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(node, alias.asname or alias.name)
            if alias.name not in ALLOWED_IMPORTS:
                self._deny(node, "import-not-allowed", f"import of {alias.name!r} (allowed: "
                           f"{', '.join(sorted(ALLOWED_IMPORTS - {'__future__'}))})")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module not in ALLOWED_IMPORTS:
            self._deny(node, "import-not-allowed", f"from {'.' * node.level}{module} import ...")
            return
        for alias in node.names:
            self._bind(node, alias.asname or alias.name)
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
        if not isinstance(node.ctx, ast.Load):
            self._bind(node, node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        root = _root(node.value) if isinstance(node.value, (ast.Name, ast.Attribute)) else None
        if root is not None and root.id in self.aliases:
            self.aliases.update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check_attr_name(node, node.attr, node.value)
        if not isinstance(node.ctx, ast.Load):
            root = _root(node.value)
            if root is None or root.id in self.aliases or root.id in self.facts.classes:
                self._deny(node, "attribute-assignment",
                           f"assigning or deleting attribute {node.attr!r} of a module, an "
                           f"imported object or a computed value (monkeypatching)")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        if id(node) not in self.facts.self_args:
            self._bind(node, node.arg)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._bind(node, node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self._bind(node, node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        self._bind(node, node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self._bind(node, node.rest)
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        # ``case object(__globals__=g)`` reads an attribute by keyword: same rules as ``x.a``
        for attr in node.kwd_attrs:
            self._check_attr_name(node, attr, None)
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
            elif node.args:
                self._check_attr_name(node, name_arg.value, node.args[0])
            # visit arguments but not the name itself: getattr is fine with a literal
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        # defining __init__/forward/__call__-free methods is fine; other dunders are not
        if _is_dunder(node.name) and node.name not in {"__init__", "__repr__"}:
            self._deny(node, "dunder-definition", f"definition of {node.name!r}")
        self._bind(node, node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node, node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self._deny(node, "global-statement", "global statements are not allowed")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        for name in node.names:
            self._bind(node, name)


_AST_LOCK = threading.Lock()


def parse_source(code: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse`` under one process-wide lock. CPython 3.11 keeps the AST constructor's
    recursion depth in interpreter-wide state, so two threads parsing at once (the pool's
    evaluation threads, the engine's novelty check) can fail with a spurious ``SystemError:
    AST constructor recursion depth mismatch`` (python/cpython#106905; seen here on 3.11.7).
    Every parse in archlore goes through this."""
    with _AST_LOCK:
        return ast.parse(code, filename=filename)


def check_source(code: str) -> list[PolicyViolation]:
    """All violations of the static policy in ``code`` (empty list: accepted).

    Also checks the candidate contract's shape: a module-level ``class Net``.
    """
    try:
        tree = parse_source(code, filename="candidate.py")
    except SyntaxError as exc:
        return [PolicyViolation(exc.lineno or 0, "syntax-error", exc.msg or "invalid syntax")]
    except ValueError as exc:  # e.g. null bytes in the source
        return [PolicyViolation(0, "syntax-error", str(exc))]
    except (RecursionError, MemoryError) as exc:  # pathological nesting, e.g. "- - - ... 1"
        return [PolicyViolation(0, "too-complex",
                                f"source nested too deeply to check ({type(exc).__name__})")]
    facts = _Facts()
    try:
        facts.visit(tree)
        checker = _Checker(facts)
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
