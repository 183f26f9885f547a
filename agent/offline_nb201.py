"""Offline (no LLM) mutation of NAS-Bench-201 cells.

An idea acts on a cell through its ``cell_ops`` (``knowledge.schema.CellOp``): what to change
is the idea's. WHERE to apply it is not this mutator's knowledge: it carries no weights over
operations or placements (an earlier version had a hand-written placement prior -- conv3x3
1.0 > conv1x1 0.6 > skip 0.25 > none 0 > avg_pool -0.25, +1 for a skip on edge 3<-0, a depth
bonus -- that encoded the benchmark's optimum; it is gone). The only structural rule is that a
cell should keep a path from input to output: among the places an op can go, disconnected
cells are avoided (``structure_score``), the rest are equally likely. A strategy that has a
prior over operations (``search.prior``: computed from the knowledge store's ideas and
updated by in-run evidence) screens several answers of this mutator and picks among them;
this mutator stays the same for every task.

Every random choice comes from ``np.random.default_rng(request.seed)``: one request, one
answer. The result carries the canonical arch string and no code (table-backed space: dedupe
and novelty use the arch string; ``search.spaces.nb201.NB201Space.render`` gives the code).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from archlore.knowledge.schema import Idea
from archlore.search.protocol import MutationRequest, MutationResult
from archlore.search.spaces.nb201 import (
    EDGES,
    NUM_ARCHS,
    NUM_EDGES,
    OPS,
    ArchError,
    Cell,
    cell_macs,
    crossover_cells,
    format_arch,
    live_edges,
    neighbours,
    parse_arch,
)

DISCONNECTED = -5.0  # a cell with no input->output path (structure, not a table value)
DEFAULT_TEMPERATURE = 0.3
DUPLICATE_HEAT = 1.0  # temperature x (1 + this x near-duplicates in the parents' feedback)
WANDER_AFTER = 3  # from this many near-duplicates on, also take 0..(dups - this + 1) extra steps

# cell op -> (ops it may replace, op it writes); None = "anything but the written op"
_TARGET = {
    "add_conv3x3": (None, "nor_conv_3x3"),
    "add_conv1x1": (None, "nor_conv_1x1"),
    "add_avg_pool": (None, "avg_pool_3x3"),
    "add_skip": (None, "skip_connect"),
    "delete_layer": (None, "none"),
    "swap_conv1x1_to_conv3x3": (("nor_conv_1x1",), "nor_conv_3x3"),
    "swap_pool_to_conv3x3": (("avg_pool_3x3",), "nor_conv_3x3"),
    "remove_pool": (("avg_pool_3x3",), "skip_connect"),  # the path stays, the blur goes
}
# a swap with nothing to swap still means "more 3x3 capacity"; remove_pool with no pool is a no-op
_FALLBACK = {"swap_conv1x1_to_conv3x3": "add_conv3x3", "swap_pool_to_conv3x3": "add_conv3x3"}
GROW_OPS = ("add_conv3x3", "swap_conv1x1_to_conv3x3", "swap_pool_to_conv3x3", "add_conv1x1",
            "add_skip")
SHRINK_OPS = ("delete_layer", "add_skip", "add_conv1x1", "remove_pool")


@lru_cache(maxsize=NUM_ARCHS)
def structure_score(cell: Cell) -> float:
    """0 for a cell with an input->output path, ``DISCONNECTED`` otherwise. Structure only:
    no operation or placement is preferred over another."""
    return 0.0 if any(live_edges(cell)) else DISCONNECTED


def _softmax_pick(rng: np.random.Generator, options: list[Cell], temperature: float) -> Cell:
    scores = np.array([structure_score(c) for c in options])
    t = max(temperature, 1e-3)
    w = np.exp((scores - scores.max()) / t)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def apply_cell_op(cell: Cell, op: str, rng: np.random.Generator, temperature: float,
                  allowed: Fits | None = None) -> tuple[Cell, str] | None:
    """Apply one cell op at a random place (disconnected results avoided); None if it
    applies nowhere."""
    if op not in _TARGET:
        raise ValueError(f"unknown cell op {op!r} (known: {', '.join(_TARGET)})")
    sources, target = _TARGET[op]
    options, where = [], {}
    for e in range(NUM_EDGES):
        if cell[e] == target or (sources is not None and cell[e] not in sources):
            continue
        child = cell[:e] + (target,) + cell[e + 1:]
        if allowed is not None and not allowed(child):
            continue
        options.append(child)
        where[child] = e
    if not options:
        return None
    child = _softmax_pick(rng, options, temperature)
    e = where[child]
    i, j = EDGES[e]
    return child, f"{op}: edge {i}<-{j} {cell[e]} -> {target}"


Fits = Callable[[Cell], bool]


def _budget_filter(request: MutationRequest) -> Fits | None:
    """Predicate: the cell is within the request's MACs cap and the goal's MACs budget
    (None = no cap). A goal budget that leaves no one-edge change is dropped, not obeyed."""
    c = request.constraints
    goal_cap = (request.goal.budgets["macs"] / 1e6
                if request.goal is not None and "macs" in request.goal.budgets else None)
    caps = [x for x in (c.max_mmacs, goal_cap) if x is not None]
    if not caps:
        return None

    def within(cap: float | None) -> Fits | None:
        if cap is None:
            return None
        return lambda cell: _macs(cell, c.image_size, c.num_classes, c.in_channels) <= cap * 1e6

    fits = within(min(caps))
    try:
        parent = parse_arch(request.parents[0].arch or "") if request.parents else None
    except ArchError:
        parent = None
    if parent is not None and fits is not None and not any(fits(n) for n in neighbours(parent)):
        return within(c.max_mmacs)
    return fits


@lru_cache(maxsize=4 * NUM_ARCHS)
def _macs(cell: Cell, image_size: int, num_classes: int, in_channels: int) -> int:
    return cell_macs(cell, image_size, num_classes, in_channels)


def _direction(request: MutationRequest) -> str | None:
    """"grow" / "shrink" from the typed goal (None without one)."""
    if request.goal is None:
        return None
    return "grow" if request.goal.adds_capacity else "shrink"


def _parent_cell(request: MutationRequest, k: int = 0) -> Cell:
    if len(request.parents) <= k or not request.parents[k].arch:
        raise ArchError(f"operator {request.operator!r} needs parent {k + 1} with an NB201 arch")
    return parse_arch(request.parents[k].arch or "")


def _init_cell(rng: np.random.Generator, temperature: float) -> Cell:
    """A random cell that keeps an input->output path (64 uniform draws, one kept)."""
    pool = [tuple(OPS[i] for i in rng.integers(0, len(OPS), NUM_EDGES)) for _ in range(64)]
    return _softmax_pick(rng, pool, temperature)


def mutate_cell(request: MutationRequest) -> MutationResult:
    """Apply ``request`` (operator, idea's cell_ops, typed goal) to the parent cell(s).

    Operators: ``init``/``random`` (connected / uniform new cell), ``idea``/``mutate`` (the
    idea's cell_ops in order; without an idea, the goal's direction), ``pareto``
    (grow or shrink as the goal says), ``refine`` (a random
    single-edge change), ``crossover`` (per-edge choice between two
    parents), ``repair`` (a valid cell nearest to the broken one).
    """
    rng = np.random.default_rng(request.seed)
    temp = DEFAULT_TEMPERATURE if request.temperature is None else float(request.temperature)
    # feedback: children of this lineage rejected as duplicates -> explore more widely
    # and take more steps: the lineage's one-edge neighbourhood is likely used up
    dups = sum(o.verdict == "duplicate" for p in request.parents for o in p.history)
    temp *= 1.0 + DUPLICATE_HEAT * dups
    extra = int(rng.integers(0, dups + 2 - WANDER_AFTER)) if dups >= WANDER_AFTER else 0
    allowed = _budget_filter(request)
    op = request.operator
    try:
        if op == "random":
            child, notes = tuple(OPS[i] for i in rng.integers(0, len(OPS), NUM_EDGES)), "random cell"
        elif op == "init":
            child, notes = _init_cell(rng, temp), "random connected cell"
        elif op == "crossover":
            child, notes = _crossover(request, rng, temp)
        elif op == "repair":
            child, notes = _repair(request, rng, temp)
        else:
            child, notes = _edit(request, rng, temp, allowed)
        if extra and op not in ("init", "random", "repair"):
            child, more = _wander(child, extra, rng, temp, allowed)
            notes += f"; after {dups} near-duplicates in this lineage: {more}"
    except (ArchError, ValueError) as exc:
        return MutationResult(status="error", error=str(exc), mode="offline")
    arch = format_arch(child)
    goal = request.goal.describe() if request.goal is not None else ""
    return MutationResult(arch=arch, code=None, mode="offline", notes=notes,
                          prompt=f"[offline nb201] {op}: {goal}".strip(),
                          applied_idea=op in ("idea", "mutate") and request.idea is not None)


def _edit(request: MutationRequest, rng: np.random.Generator, temp: float,
          allowed: Fits | None) -> tuple[Cell, str]:
    parent = _parent_cell(request)
    # a Pareto goal is met with a grow / shrink op; an idea sent along is not applied
    use_idea = request.idea is not None and request.operator != "pareto"
    ops: list[str] = list(request.idea.cell_ops) if use_idea and request.idea.cell_ops else []
    direction = _direction(request)
    if not ops:
        pool = SHRINK_OPS if direction == "shrink" else GROW_OPS
        if request.operator == "refine" or direction is None and request.operator != "idea":
            # refine / plain mutate: one of all one-edge changes
            options = [c for c in neighbours(parent) if allowed is None or allowed(c)]
            if not options:
                raise ValueError("no one-edge change of the parent fits the MACs cap")
            child = _softmax_pick(rng, options, temp)
            e = next(k for k in range(NUM_EDGES) if child[k] != parent[k])
            return child, f"refine: edge {EDGES[e][0]}<-{EDGES[e][1]} {parent[e]} -> {child[e]}"
        ops = [pool[int(rng.integers(len(pool)))]]
    cell, notes = parent, []
    for cop in ops:
        step = apply_cell_op(cell, cop, rng, temp, allowed)
        if step is None and cop in _FALLBACK:
            step = apply_cell_op(cell, _FALLBACK[cop], rng, temp, allowed)
        if step is None:
            notes.append(f"{cop}: nowhere to apply")
            continue
        cell, note = step
        notes.append(note)
    if cell == parent:  # ops cancelled out or applied nowhere: still return a new cell
        options = [c for c in neighbours(parent) if allowed is None or allowed(c)]
        if not options:
            raise ValueError("the idea's cell ops do not apply to the parent within the MACs cap")
        cell = _softmax_pick(rng, options, temp)
        notes.append("no net change; took a random one-edge change instead")
    return cell, "; ".join(notes)


def _wander(cell: Cell, steps: int, rng: np.random.Generator, temp: float,
            allowed: Fits | None) -> tuple[Cell, str]:
    """``steps`` further random one-edge changes (never back to a visited cell)."""
    visited, notes = {cell}, []
    for _ in range(steps):
        options = [c for c in neighbours(cell)
                   if c not in visited and (allowed is None or allowed(c))]
        if not options:
            break
        nxt = _softmax_pick(rng, options, temp)
        e = next(k for k in range(NUM_EDGES) if nxt[k] != cell[k])
        notes.append(f"edge {EDGES[e][0]}<-{EDGES[e][1]} {cell[e]} -> {nxt[e]}")
        cell = nxt
        visited.add(cell)
    return cell, "also " + (", ".join(notes) or "nothing")


def _crossover(request: MutationRequest, rng: np.random.Generator, temp: float
               ) -> tuple[Cell, str]:
    a, b = _parent_cell(request, 0), _parent_cell(request, 1)
    pool = {crossover_cells(a, b, rng) for _ in range(16)} - {a, b}
    if not pool:  # identical parents
        pool = set(neighbours(a))
    child = _softmax_pick(rng, sorted(pool), temp)
    return child, "crossover: " + ", ".join(
        f"{i}<-{j} from {'A' if x == y else 'B'}" for (i, j), x, y in zip(EDGES, child, a, strict=True))


def _repair(request: MutationRequest, rng: np.random.Generator, temp: float) -> tuple[Cell, str]:
    """Rebuild a valid cell from a broken arch string: keep every recognisable op."""
    text = request.parents[0].arch if request.parents else ""
    found = re.findall(r"(" + "|".join(OPS) + r")~\d", text or "")
    if len(found) == NUM_EDGES:
        return tuple(found), "repair: normalised the arch string"
    cell = list(_init_cell(rng, temp))
    for k, op in enumerate(found[:NUM_EDGES]):
        cell[k] = op
    return tuple(cell), f"repair: kept {len(found[:NUM_EDGES])} ops, filled the rest at random"


class NB201OfflineMutator:
    """``Mutator`` for the NB201 space alone (the general ``agent.offline.OfflineMutator``
    delegates its ``space == "nb201"`` requests to :func:`mutate_cell` too)."""

    name = "offline"
    uses_paper_text = False

    def unsupported_reason(self, idea: Idea, space: str) -> str | None:
        if space != "nb201":
            return f"this mutator serves the nb201 space only, not {space!r}"
        return None if idea.cell_ops else "no NAS-Bench-201 cell operations"

    def mutate(self, request: MutationRequest) -> MutationResult:
        return mutate_cell(request)
