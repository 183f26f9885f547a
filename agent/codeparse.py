"""Turning an LLM answer into candidate code.

Two answer shapes are understood:
- full code: with or without Markdown fences, with prose around it, possibly several classes
  (crossover answers often repeat the parents); the module is cut down to the ``Net`` class and
  what it needs (imports, helper classes/functions/constants it references).
- SEARCH/REPLACE blocks (aider-style) applied to the parent source::

      <<<<<<< SEARCH
      old lines
      =======
      new lines
      >>>>>>> REPLACE

Failures raise ``CodeParseError`` / ``EditApplyError`` with a reason precise enough to send
back to the model (which block, the closest line of the parent).
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

from archlore.evaluator.policy import parse_source

FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
BLOCK_RE = re.compile(
    r"^[ \t]*<{5,9} ?SEARCH[^\n]*\n(.*?)^[ \t]*={5,9}[ \t]*\n(.*?)^[ \t]*>{5,9} ?REPLACE[^\n]*$",
    re.S | re.M)
CODE_START_RE = re.compile(r"^(import |from \w[\w.]* import |class \w|def \w|@\w)", re.M)


class CodeParseError(ValueError):
    """The answer holds no usable Net code; the message says why."""


class EditApplyError(ValueError):
    """A SEARCH/REPLACE block does not apply to the parent; the message says which and why."""


@dataclass
class EditBlock:
    search: str
    replace: str
    index: int  # 1-based position in the answer


def has_edit_blocks(text: str) -> bool:
    return "SEARCH" in text and bool(re.search(r"^[ \t]*<{5,9} ?SEARCH", text, re.M))


def parse_edit_blocks(text: str) -> list[EditBlock]:
    """All complete SEARCH/REPLACE blocks in ``text``; an unterminated last block is an error."""
    text = text.replace("\r\n", "\n")  # CRLF answers: the block markers end in "\r\n"
    blocks = [EditBlock(m.group(1), m.group(2), i)
              for i, m in enumerate(BLOCK_RE.finditer(text), 1)]
    opened = len(re.findall(r"^[ \t]*<{5,9} ?SEARCH", text, re.M))
    if opened > len(blocks):
        raise EditApplyError(
            f"{opened} SEARCH blocks opened but only {len(blocks)} complete "
            f"(each needs '=======' and '>>>>>>> REPLACE'); the answer looks truncated")
    return blocks


def apply_edit_blocks(source: str, blocks: list[EditBlock]) -> str:
    """Apply blocks to ``source``. Every SEARCH refers to the ORIGINAL source (so reasons
    quote the parent's own line numbers); matched spans must not overlap. Exact line match
    first, then one ignoring trailing whitespace and a uniform indentation shift (the
    REPLACE lines are shifted the same way). Raises EditApplyError naming the block and the
    closest parent line."""
    if not blocks:
        raise EditApplyError("no SEARCH/REPLACE blocks found")
    src_lines = source.splitlines(keepends=True)
    if src_lines and not src_lines[-1].endswith("\n"):
        src_lines[-1] += "\n"
    spans: list[tuple[int, int, list[str], int]] = []
    for block in blocks:
        start, end, new = _locate(src_lines, block)
        for other_start, other_end, _, other_index in spans:
            if start < other_end and other_start < end:
                raise EditApplyError(
                    f"block {block.index}: its SEARCH lines {start + 1}-{end} overlap those "
                    f"of block {other_index} (lines {other_start + 1}-{other_end}); merge them")
        spans.append((start, end, new, block.index))
    for start, end, new, _ in sorted(spans, key=lambda t: t[0], reverse=True):
        src_lines[start:end] = new
    return "".join(src_lines)


def _locate(src_lines: list[str], block: EditBlock) -> tuple[int, int, list[str]]:
    """(start, end) line span of the block's SEARCH in the source and its replacement lines."""
    s_lines = block.search.splitlines()
    while s_lines and not s_lines[-1].strip():
        s_lines.pop()
    while s_lines and not s_lines[0].strip():
        s_lines.pop(0)
    if not s_lines:
        raise EditApplyError(f"block {block.index}: SEARCH part is empty; quote the lines to "
                             f"change")
    n = len(s_lines)
    plain = [line.rstrip("\n") for line in src_lines]
    exact = [i for i in range(len(plain) - n + 1) if plain[i:i + n] == s_lines]
    matches = exact or [i for i in range(len(plain) - n + 1)
                        if _loose_equal(plain[i:i + n], s_lines)]
    if len(matches) > 1:
        raise EditApplyError(
            f"block {block.index}: SEARCH text matches {len(matches)} places (lines "
            f"{', '.join(str(m + 1) for m in matches[:5])}); include more surrounding lines "
            f"so it is unique")
    if not matches:
        raise EditApplyError(_mismatch_reason(src_lines, s_lines, block.index))
    i = matches[0]
    shift = 0 if exact else _indent_delta(plain[i:i + n], s_lines)
    new = [_reindent(line, shift) for line in block.replace.splitlines(keepends=True)]
    if new and not new[-1].endswith("\n"):
        new[-1] += "\n"
    return i, i + n, new


def _loose_equal(window: list[str], search: list[str]) -> bool:
    a = [w.rstrip() for w in window]
    b = [s.rstrip() for s in search]
    if [x.strip() for x in a] != [y.strip() for y in b]:
        return False
    # Same relative indentation: the block may be shifted as a whole, not re-shaped.
    deltas = {len(x) - len(x.lstrip()) - (len(y) - len(y.lstrip()))
              for x, y in zip(a, b, strict=True) if x.strip()}
    return len(deltas) <= 1


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _first_nonblank(lines: list[str]) -> int:
    return next((i for i, line in enumerate(lines) if line.strip()), 0)


def _indent_delta(window: list[str], search: list[str]) -> int:
    i = _first_nonblank(search)
    return len(_indent(window[i])) - len(_indent(search[i]))


def _reindent(line: str, shift: int) -> str:
    if shift > 0 and line.strip():
        return " " * shift + line
    if shift < 0 and line.strip():
        return line[min(-shift, len(_indent(line))):]
    return line


def _mismatch_reason(src_lines: list[str], s_lines: list[str], index: int) -> str:
    """Say which SEARCH line first fails to match and which parent line is closest to it."""
    plain = [line.rstrip("\n") for line in src_lines]
    stripped = [p.strip() for p in plain]
    for s in s_lines:
        if s.strip() and s.strip() not in stripped:
            close = difflib.get_close_matches(s.strip(), stripped, n=1, cutoff=0.0)
            where = ""
            if close:
                n = stripped.index(close[0]) + 1
                where = f"; closest parent line {n}: {plain[n - 1].strip()!r}"
            return (f"block {index}: SEARCH line {s.strip()!r} is not in the parent{where}. "
                    f"SEARCH must copy the parent's lines exactly")
    return (f"block {index}: every SEARCH line exists in the parent but not as one contiguous "
            f"run in this order (starting near parent line "
            f"{stripped.index(s_lines[_first_nonblank(s_lines)].strip()) + 1}); copy a "
            f"contiguous run of lines")


# ---------------------------------------------------------------- full code


def extract_code(text: str, class_name: str = "Net") -> str:
    """Return a Python module defining ``class_name`` extracted from an answer.

    Raises CodeParseError: no code, a truncated answer, a syntax error (with line), no Net.
    """
    candidates = _code_candidates(text)
    if not candidates:
        raise CodeParseError("the answer contains no Python code (no fence, no import/class line)")
    with_net = [c for c in candidates if re.search(rf"^\s*class\s+{class_name}\b", c[0], re.M)]
    with_any = [c for c in candidates if re.search(r"^\s*class\s+\w*Net\w*\s*\(", c[0], re.M)]
    code, closed = (with_net or with_any or candidates)[-1]
    try:
        tree = parse_source(code)
    except SyntaxError as e:
        if not closed or _looks_truncated(code, e):
            raise CodeParseError(
                f"the answer looks truncated (code stops at line {code.count(chr(10)) + 1}: "
                f"{code.rstrip().splitlines()[-1].strip()[:80]!r}); answer with the complete "
                f"code") from e
        raise CodeParseError(f"syntax error at line {e.lineno}: {e.msg}: "
                             f"{(e.text or '').strip()[:80]!r}") from e
    if not closed and not _has_forward(tree, class_name):
        last = (code.rstrip().splitlines() or [""])[-1].strip()[:80]  # "" for an empty fence
        raise CodeParseError(
            f"the answer looks truncated: the code fence is never closed and {class_name} has no "
            f"forward method (code stops at {last!r})")
    return prune_to_net(tree, class_name, code)


def _has_forward(tree: ast.Module, class_name: str) -> bool:
    return any(isinstance(n, ast.ClassDef) and any(
        isinstance(f, ast.FunctionDef) and f.name == "forward" for f in n.body)
        for n in tree.body if getattr(n, "name", "") == class_name or
        (isinstance(n, ast.ClassDef) and "net" in n.name.lower()))


def _code_candidates(text: str) -> list[tuple[str, bool]]:
    """(code, fence_was_closed) pieces of the answer, in order."""
    fenced = []
    for m in FENCE_RE.finditer(text):
        lang, body = m.group(1).lower(), m.group(2)
        if lang and lang not in ("python", "py", "python3"):
            continue
        fenced.append((body, m.group(0).endswith("```")))
    if fenced:
        return fenced
    m = CODE_START_RE.search(text)
    if not m:
        return []
    return [(_drop_trailing_prose(text[m.start():]), True)]


def _drop_trailing_prose(code: str) -> str:
    """Unfenced answers often end with an explanation; cut at the first prose paragraph."""
    lines = code.splitlines()
    for i in range(1, len(lines)):
        prev_blank = not lines[i - 1].strip()
        line = lines[i]
        if prev_blank and line and not line[0].isspace() and not CODE_START_RE.match(line) \
                and not re.match(r"^[A-Za-z_][\w.]*\s*(=|\()|^#|^if |^@|^\)|^\]", line):
            return "\n".join(lines[:i])
    return code


def _looks_truncated(code: str, error: SyntaxError) -> bool:
    last = code.rstrip().splitlines()[-1] if code.strip() else ""
    at_end = error.lineno is not None and error.lineno >= code.rstrip().count("\n") + 1
    return at_end and ("EOF" in (error.msg or "") or "was never closed" in (error.msg or "")
                       or last.rstrip().endswith((",", "(", "[", ":", "=", "+", "\\")))


def prune_to_net(tree: ast.Module, class_name: str = "Net", source: str | None = None) -> str:
    """Keep imports, constants and the definitions ``class_name`` needs (transitively).

    If no class is named ``class_name`` but exactly one ``*Net*`` class remains after dropping
    classes that other classes' names suggest are parents (``Net1``, ``Net2`` in a crossover
    answer), the last ``*Net*`` class is renamed to ``class_name``.
    """
    defs = {n.name: n for n in tree.body
            if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    renamed = class_name not in defs
    if renamed:
        nets = [n for n in tree.body if isinstance(n, ast.ClassDef) and "net" in n.name.lower()]
        if not nets:
            raise CodeParseError(f"the code defines no class {class_name!r} "
                                 f"(classes: {', '.join(sorted(defs)) or 'none'})")
        chosen = nets[-1]
        _rename(tree, chosen.name, class_name)
        defs = {n.name: n for n in tree.body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    needed: set[str] = set()
    # Module-level assignments: constants are always kept; one with a call (WIDTH = int(16 *
    # 1.5), ACT = nn.ReLU()) only when a kept definition reads its name (so `model = Net()`
    # and other top-level side effects are dropped, but nothing the code uses is).
    assigns = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))]
    kept_assigns = {id(n) for n in assigns if _is_constant_def(n)}
    name_refs: set[str] = set()  # names read by kept definitions and kept assignments
    todo = [class_name]
    for node in assigns:
        if id(node) in kept_assigns and node.value is not None:
            todo.extend(n.id for n in ast.walk(node.value) if isinstance(n, ast.Name))
    changed = True
    while changed:
        while todo:
            name = todo.pop()
            name_refs.add(name)
            if name in needed or name not in defs:
                continue
            needed.add(name)
            todo.extend(n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name))
            todo.extend(n.attr for n in ast.walk(defs[name])  # self.helper(...) style
                        if isinstance(n, ast.Attribute) and n.attr in defs)
        changed = False
        for node in assigns:
            if id(node) not in kept_assigns and node.value is not None \
                    and _bound_names(node) & name_refs:
                kept_assigns.add(id(node))
                todo.extend(n.id for n in ast.walk(node.value) if isinstance(n, ast.Name))
                changed = True
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept.append(node)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name in needed:
                kept.append(node)
        elif id(node) in kept_assigns:
            kept.append(node)
        # dropped: `if __name__ == ...`, prints, `model = Net()`, other statements
    if source is None or renamed:
        return ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"
    lines = source.splitlines()
    pieces = []
    for node in kept:  # original text of each kept statement, comments inside included
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        pieces.append("\n".join(lines[start - 1:node.end_lineno]))
    return "\n".join(p if not p.startswith(("class ", "def ", "@")) else "\n" + p
                     for p in pieces).strip() + "\n"


def _bound_names(node: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _is_constant_def(node: ast.Assign | ast.AnnAssign) -> bool:
    value = node.value
    return value is not None and not any(isinstance(n, ast.Call) for n in ast.walk(value))


def _rename(tree: ast.Module, old: str, new: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == old:
            node.name = new
        elif isinstance(node, ast.Name) and node.id == old:
            node.id = new


def strip_fences(text: str) -> str:
    """The first fenced block's body, or the text itself when unfenced."""
    m = FENCE_RE.search(text)
    return m.group(2) if m else text


# ---------------------------------------------------------------- weak answers


def _drop_docstrings(tree: ast.AST) -> None:
    """Remove every module/class/function docstring in place."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]


def normalized(code: str) -> str | None:
    """The code's behaviour-relevant form: its AST with comments, docstrings and layout
    dropped (so a child that only rewrote comments, e.g. the ``# archlore-spec:`` header, or
    re-indented compares equal to its parent). None when the code does not parse."""
    try:
        tree = parse_source(code)
    except SyntaxError:
        return None
    _drop_docstrings(tree)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _net_closure(code: str) -> str:
    """``code`` cut down to Net and what it uses (unused helpers do not change behaviour)."""
    try:
        return prune_to_net(parse_source(code), "Net", None)
    except (SyntaxError, CodeParseError):
        return code


def same_behaviour(child: str, parent: str) -> bool:
    """True when ``child`` is ``parent`` up to comments, docstrings, formatting and unused
    helpers (a parent echo: a no-op, never a new candidate)."""
    a, b = normalized(_net_closure(child)), normalized(_net_closure(parent))
    return a is not None and a == b


def compact_code(code: str) -> str:
    """The same network in fewer tokens, for prompts: docstrings, comments and definitions
    Net does not use are dropped (``ast.unparse`` layout). Unparseable code comes back as is."""
    try:
        tree = parse_source(code)
    except SyntaxError:
        return code
    _drop_docstrings(tree)
    try:
        return prune_to_net(tree, "Net", None)
    except CodeParseError:
        return ast.unparse(tree) + "\n"


_BUILTINS = set(dir(__import__("builtins")))


def _module_bindings(tree: ast.Module) -> dict[str, ast.stmt]:
    """Name -> the module-level statement that binds it (imports, defs, assignments)."""
    out: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = (alias.asname or alias.name).split(".")[0]
                out.setdefault(name, node)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for name in _bound_names(node):
                out.setdefault(name, node)
    return out


def _free_names(tree: ast.Module) -> set[str]:
    """Names read somewhere in the module that nothing in it binds (nor a builtin)."""
    bound = set(_module_bindings(tree))
    local: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            local.add(node.id)
        elif isinstance(node, ast.arg):
            local.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local.add(node.name)
        elif isinstance(node, ast.alias):
            local.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            local.add(node.name)
    reads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return reads - bound - local - _BUILTINS


def merge_parent_context(child: str, parent: str) -> tuple[str, list[str]]:
    """Add back what ``child`` uses but lost and ``parent`` defines at module level: imports,
    helper classes and functions, constants (transitively: a restored helper's own needs
    too). Small models often answer with ``class Net`` alone. Returns (code, names added);
    the code is unchanged when nothing is missing or either side does not parse."""
    try:
        ctree, ptree = parse_source(child), parse_source(parent)
    except SyntaxError:
        return child, []
    pbind = _module_bindings(ptree)
    missing = sorted(n for n in _free_names(ctree) if n in pbind)
    if not missing:
        return child, []
    plines = parent.splitlines()
    chosen: list[ast.stmt] = []
    added: list[str] = []
    todo = list(missing)
    have = set(_module_bindings(ctree))
    while todo:
        name = todo.pop(0)
        if name in have or name not in pbind:
            continue
        stmt = pbind[name]
        have.add(name)
        added.append(name)
        if stmt in chosen:
            continue
        chosen.append(stmt)
        sub = ast.Module(body=[stmt], type_ignores=[])
        todo.extend(n for n in sorted(_free_names(sub)) if n not in have)
    chosen.sort(key=lambda s: s.lineno)  # the parent's order: helpers before their users

    def text(node: ast.stmt) -> str:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return "\n".join(plines[start - 1:node.end_lineno])

    imports = [text(s) for s in chosen if isinstance(s, (ast.Import, ast.ImportFrom))]
    others = [text(s) for s in chosen if not isinstance(s, (ast.Import, ast.ImportFrom))]
    clines = child.splitlines()
    # after the child's own imports (and a leading comment block), before its first definition
    cut = 0
    for node in ctree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            cut = node.end_lineno
        else:
            break
    head = clines[:cut]
    tail = clines[cut:]
    pieces = head + imports
    if others:
        pieces += ["", ""] + "\n\n\n".join(others).splitlines() + [""]
    merged = "\n".join(pieces + tail).strip("\n") + "\n"
    try:
        parse_source(merged)
    except SyntaxError:
        return child, []
    return merged, added
