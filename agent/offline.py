"""The offline mutator: archlore's embedded default, no LLM.

It edits architectures through the open space's structured description (``ArchSpec``) and renders
them to ``Net`` code, so every child is valid by construction. Deterministic given
``request.seed`` (and the request's content).

Conventions (what search should send):

- **parent spec**: taken from ``ParentInfo.arch`` (ArchSpec JSON) or else from the
  ``# archlore-spec:`` header of ``ParentInfo.code``. A parent with neither (e.g. code written by an
  LLM) is replaced by a seed net, and the notes say so.
- ``init``: seed net number ``seed % len(seeds)`` of ``OpenSpace.seeds(constraints)``.
- ``random``: ``OpenSpace.random`` within the caps.
- ``idea``: applies ``request.idea.edits``. ``status="unsupported"`` when the idea has no
  edits (``unsupported_reason`` says so up front), ``error`` when an edit does not apply,
  ``no_op`` when the parent already embodies the idea (the edits change nothing); search
  should then pick another idea or parent.
- ``pareto``: the typed ``request.goal``: a goal that adds capacity (improve a maximised
  objective) makes one capacity-adding move whose result still fits, one that cuts a cost makes
  one cost-cutting move; ``goal.budgets["macs"]`` / ``["params"]`` tighten the caps. Without a
  goal: shrink when the parent's MACs are at least half of ``constraints.max_mmacs``, else grow.
  An idea sent along is not applied (``applied_idea=False``): the move meets the goal.
- ``refine`` (and ``mutate`` without an idea): one small named move (``MutationResult.move``).
  If the newest ``ParentInfo.history`` outcome made a move and its verdict is ``worse``, the
  inverse move is applied; ``better``: the same move is repeated; otherwise a random
  applicable move.
- ``crossover``: uniform crossover of ``parents[0]`` and ``parents[1]``.
- ``repair``: ``parents[0]`` is the failed child, ``parents[1]`` (optional) its parent,
  ``request.failure`` why. Stage ``cost`` or a timeout -> shrink until the estimate fits the
  caps (at least one cut). Any other failure -> revert to ``parents[1]`` and apply one refine
  move (or re-render the child's spec when there is no parent).

Every result is shrunk to fit ``constraints.max_mmacs`` / ``max_params`` (estimated with
FlopCounterMode on meta tensors) before it is returned. For ``request.space == "nb201"`` the work is
delegated to ``agent.offline_nb201.mutate_cell``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from archlore.knowledge.schema import Idea
from archlore.search.protocol import (
    Constraints,
    MutationRequest,
    MutationResult,
    MutationStatus,
    ParentInfo,
)
from archlore.search.spaces.open import (
    ALL_MOVES,
    INVERSE_MOVE,
    ArchSpec,
    OpenSpace,
    apply_edits,
    fits,
    measure,
)

_OPERATORS = ("init", "idea", "pareto", "refine", "crossover", "repair", "random", "mutate")


class OfflineMutator:
    """``search.protocol.Mutator`` without an LLM (see the module docstring for conventions)."""

    name = "offline"
    uses_paper_text = False  # it applies structured edits; paper chunks would go unread

    def unsupported_reason(self, idea: Idea, space: str) -> str | None:
        if space == "nb201":
            return None if idea.cell_ops else "no NAS-Bench-201 cell operations"
        if space == "open":
            return None if idea.edits else "no structured edits for the open space"
        return f"unknown space {space!r}"

    def __init__(self, space: OpenSpace | None = None, **options: Any) -> None:
        # options: accepted for make_mutator(**cfg) compatibility; the offline mutator has none
        self.space = space or OpenSpace()
        self.options = options

    # ------------------------------------------------------------------------------------------
    def mutate(self, request: MutationRequest) -> MutationResult:
        if request.operator == "swnas":  # SWNAS's LLM step, answered by the rule-based advisor
            if request.signals is None:
                return MutationResult(status="error", error="swnas request without signals")
            from archlore.search.swnas.advisor import advise

            edits = advise(request.signals)
            return MutationResult(space_edits=edits, notes=f"rules advisor: {len(edits)} edits")
        if request.space == "nb201":
            try:
                from archlore.agent.offline_nb201 import mutate_cell
            except ImportError as exc:
                return MutationResult(error=f"nb201 offline mutation unavailable: {exc}")
            return mutate_cell(request)
        if request.space != "open":
            return MutationResult(error=f"offline mutator: unknown space {request.space!r} "
                                        "(known: open, nb201)")
        rng = np.random.default_rng([request.seed, _OPERATORS.index(request.operator)])
        c = request.constraints
        self._move: str | None = None
        try:
            spec, notes = self._dispatch(request, rng, c)
            spec, moves = self.space.fit_steps(spec, c)
        except _NoChild as exc:
            return MutationResult(status=exc.status, error=str(exc))
        except ValueError as exc:
            return MutationResult(status="error", error=f"offline {request.operator}: {exc}")
        if moves:
            notes.append("shrunk to fit the caps: " + ", ".join(moves))
        macs, params = measure(spec, c)
        notes.append(f"estimate {macs / 1e6:.3f} MMACs, {params} params")
        applied = request.operator in ("idea", "mutate") and request.idea is not None
        return MutationResult(code=self.space.render(spec, c), arch=spec.to_json(), mode="offline",
                              move=self._move, notes="; ".join(notes),
                              applied_idea=applied or request.operator == "repair")

    # ------------------------------------------------------------------------------------------
    def _dispatch(self, req: MutationRequest, rng: np.random.Generator,
                  c: Constraints) -> tuple[ArchSpec, list[str]]:
        op = req.operator
        if op == "init":
            seeds = self.space.seeds(c)
            spec = seeds[req.seed % len(seeds)]
            return spec, [f"init: seed net {spec.name}"]
        if op == "random":
            return self.space.random(rng, c), ["random architecture"]
        if op == "idea" or (op == "mutate" and req.idea is not None):
            return self._idea(req, c)
        if op == "pareto":
            return self._pareto(req, rng, c)
        if op in ("refine", "mutate"):
            parent, notes = self._parent(req, 0, c)
            last = req.parents[0].history[-1] if req.parents and req.parents[0].history else None
            spec, move_notes = self._refine(parent, last, rng, c)
            return spec, notes + move_notes
        if op == "crossover":
            return self._crossover(req, rng, c)
        if op == "repair":
            return self._repair(req, rng, c)
        raise _NoChild(f"offline mutator: unknown operator {op!r}")

    def _parent(self, req: MutationRequest, index: int, c: Constraints) -> tuple[ArchSpec, list[str]]:
        if index < len(req.parents):
            spec = parent_spec(req.parents[index])
            if spec is not None:
                return spec, []
        seeds = self.space.seeds(c)
        spec = seeds[req.seed % len(seeds)]
        why = "no parent given" if index >= len(req.parents) else "parent has no ArchSpec"
        return spec, [f"{why}: started from seed net {spec.name}"]

    def _idea(self, req: MutationRequest, c: Constraints) -> tuple[ArchSpec, list[str]]:
        idea = req.idea
        if idea is None:
            raise _NoChild("offline idea mutation needs request.idea")
        if not idea.edits:
            raise _NoChild(f"idea {idea.id!r} has no edits for the open space (not applicable "
                           "offline)", "unsupported")
        parent, notes = self._parent(req, 0, c)
        child = apply_edits(parent, idea.edits)
        if child.key() == parent.key():
            raise _NoChild(f"no-op: the parent already embodies idea {idea.id!r}", "no_op")
        edits = ", ".join(f"{e.op} {e.path}={e.value}" if e.path else f"{e.op} {e.value}"
                          for e in idea.edits)
        return child, notes + [f"idea {idea.id}: {edits}"]

    def _pareto(self, req: MutationRequest, rng: np.random.Generator,
                c: Constraints) -> tuple[ArchSpec, list[str]]:
        parent, notes = self._parent(req, 0, c)
        goal = req.goal
        if goal is not None and "macs" in goal.budgets:
            budget = goal.budgets["macs"] / 1e6
            c = c.model_copy(update={"max_mmacs": min(budget, c.max_mmacs or budget)})
        if goal is not None and "params" in goal.budgets:
            cap = int(goal.budgets["params"])
            c = c.model_copy(update={"max_params": min(cap, c.max_params or cap)})
        if goal is not None:
            direction = "grow" if goal.adds_capacity else "shrink"
        else:
            ev = req.parents[0].evaluation if req.parents else None
            macs = ev.macs if ev is not None and ev.macs is not None else measure(parent, c)[0]
            direction = "shrink" if c.max_mmacs and macs >= 0.5 * c.max_mmacs * 1e6 else "grow"
        if direction == "grow":
            step = self.space.grow_step(parent, c, rng)
            if step is None:
                raise _NoChild(f"pareto grow: no capacity-adding move fits max_mmacs={c.max_mmacs}")
        else:
            step = self.space.shrink_step(parent, c, rng)
            if step is None:
                raise _NoChild("pareto shrink: no move cuts MACs further")
        spec, move = step
        self._move = move
        before, after = measure(parent, c)[0], measure(spec, c)[0]
        return spec, notes + [f"pareto {direction}: move {move} ({before / 1e6:.3f} -> "
                              f"{after / 1e6:.3f} MMACs)"]

    def _refine(self, parent: ArchSpec, last: Any, rng: np.random.Generator,
                c: Constraints) -> tuple[ArchSpec, list[str]]:
        """One named move; ``last`` (the lineage's newest ``Outcome``) decides whether its move
        is repeated (verdict ``better``) or undone (``worse``)."""
        preferred = None
        move = last.move if last is not None and last.move in ALL_MOVES else None
        if move and last.verdict == "worse":
            preferred, why = INVERSE_MOVE.get(move), f"undoing {move} (it was worse)"
        elif move and last.verdict == "better":
            preferred, why = move, f"repeating {move} (it was better)"
        if preferred is not None:
            child = self.space.move(parent, preferred, c, rng)
            if child is not None and fits(child, c):
                self._move = preferred
                return child, [f"refine: move {preferred}, {why}"]
        names = list(ALL_MOVES)
        for i in rng.permutation(len(names)):
            child = self.space.move(parent, names[i], c, rng)
            if child is not None and fits(child, c):
                self._move = names[i]
                return child, [f"refine: move {names[i]}"]
        raise _NoChild("refine: no move applies to the parent within the caps")

    def _crossover(self, req: MutationRequest, rng: np.random.Generator,
                   c: Constraints) -> tuple[ArchSpec, list[str]]:
        if len(req.parents) < 2:
            raise _NoChild("crossover needs two parents")
        a, na = self._parent(req, 0, c)
        b, nb = self._parent(req, 1, c)
        if a.key() == b.key():
            raise _NoChild("crossover: the two parents have the same architecture")
        for _ in range(8):  # a uniform crossover can reproduce a parent; draw again
            child = self.space.crossover(a, b, rng)
            if child.key() not in (a.key(), b.key()):
                break
        return child, na + nb + [f"crossover of {a.name} and {b.name}"]

    def _repair(self, req: MutationRequest, rng: np.random.Generator,
                c: Constraints) -> tuple[ArchSpec, list[str]]:
        f = req.failure
        error = f.describe() if f is not None else "unknown failure"
        child = parent_spec(req.parents[0]) if req.parents else None
        if child is not None and f is not None and (f.stage == "cost" or f.status == "timeout"):
            spec, moves = self.space.fit_steps(child, c)
            if not moves:  # the estimate already fits (timeout / memory): cut once more
                step = self.space.shrink_step(child, c)
                if step is None:
                    raise _NoChild("repair: cannot make the child any cheaper")
                spec, moves = step[0], [step[1]]
            return spec, [f"repair ({_short(error)}): shrink: " + ", ".join(moves)]
        parent = parent_spec(req.parents[1]) if len(req.parents) > 1 else None
        if parent is not None:
            spec, notes = self._refine(parent, None, rng, c)
            return spec, [f"repair ({_short(error)}): reverted to the parent"] + notes
        if child is not None:
            return child, [f"repair ({_short(error)}): re-rendered the child's ArchSpec"]
        spec, notes = self._parent(req, 0, c)
        return spec, [f"repair ({_short(error)}): nothing recoverable"] + notes


class _NoChild(Exception):
    """The request cannot produce a child; the message becomes MutationResult.error."""

    def __init__(self, message: str, status: MutationStatus = "error") -> None:
        super().__init__(message)
        self.status = status


def parent_spec(parent: ParentInfo) -> ArchSpec | None:
    """The parent's ArchSpec from ``arch`` (JSON) or the code's ``# archlore-spec:`` header."""
    if parent.arch:
        try:
            return ArchSpec.from_json(parent.arch)
        except ValueError:
            pass
    return ArchSpec.from_code(parent.code) if parent.code else None


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
