"""The LLM mutator's turns on the NAS-Bench-201 cell (an arch line or JSON cell changes) and
SWNAS's advisor step (JSON space edits), as a mixin of the mutator's session."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from archlore.agent import prompts, structured
from archlore.agent.llm_prompting import (
    _RANKED,
    ARCH_RE,
    NB201_ANSWER_TOKENS,
    NB201_PROMPTS,
    NO_OP,
    SCORED,
    STRUCTURED_ANSWER_TOKENS,
    SWNAS_ANSWER_TOKENS,
    _history_block,
    _idea_block,
    _instruction,
    _metrics_block,
)

if TYPE_CHECKING:
    from archlore.search.protocol import MutationResult


class CellTurns:
    """``run_nb201``, ``run_nb201_structured`` and ``run_swnas`` of ``llm_mutator._Session``
    (which provides ``req``, ``ask``, ``may_retry``, ``render_within`` and ``result``)."""

    def run_nb201(self) -> MutationResult:
        req = self.req
        self.answer_tokens = NB201_ANSWER_TOKENS
        system = prompts.render("nb201_system")
        self.messages.append({"role": "system", "content": system})
        parent = req.parents[0] if req.parents else None
        instruction = _instruction(req)
        if req.operator == "init" or parent is None or not parent.arch:
            template = "nb201_init"
        elif req.operator == "crossover" and len(req.parents) >= 2:
            template = "nb201_crossover"
        else:
            template = "nb201_mutate"
            if not instruction and req.idea is None:
                instruction = random.Random(req.seed).choice(NB201_PROMPTS)
        other = req.parents[1] if len(req.parents) > 1 else None
        values = dict(
            dataset=req.constraints.dataset,
            parent_arch=parent.arch if parent else "",
            parent_metrics=_metrics_block(parent.evaluation if parent else None, "Evaluation"),
            other_arch=other.arch if other else "",
            other_metrics=_metrics_block(other.evaluation if other else None, "Evaluation"),
            idea_block=_idea_block(req.idea, req.chunks) if req.idea else "",
            history=_history_block(req, parent),
            avoid=_avoid_line(parent.arch, req.avoid) if parent and parent.arch else "",
            instruction=instruction)
        text = self.ask(self.render_within(template, values, _RANKED, system))
        scored = set(req.avoid)
        parents = {p.arch for p in req.parents if p.arch} if template != "nb201_init" else set()
        noop_asked = False
        turn = 0
        while True:
            arch, error = _parse_arch(text)
            if arch is not None and arch in parents:
                arch, error = None, NO_OP
            if arch is not None and arch in scored and not self.scored_asked:
                self.scored_asked = True
                self.notes.append("answer is a cell the run already scored; asked once more")
                text = self.ask(_SCORED_RETRY.format(answer="one line `ARCH: |...|+|...|+|...|`"))
                continue
            if arch is not None:
                return self.result(arch=arch, mode="full")
            if error == NO_OP and self.m.noop_retry and not noop_asked:
                noop_asked = True
                self.notes.append("answer repeated the parent cell; asked once more")
                text = self.ask("That is the parent cell unchanged. Change at least one edge. "
                                "Answer with one line `ARCH: |...|+|...|+|...|`.")
                continue
            if error == NO_OP:
                return self.result(mode="full", status="no_op",
                                   error="the answer is the parent cell unchanged: a no-op")
            if turn >= self.m.max_repair_turns:
                break
            turn += 1
            self.notes.append(f"repair turn {turn}: {error}")
            text = self.ask(f"That is not a valid cell: {error}\n"
                            "Answer with one line `ARCH: |op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.")
        return self.result(mode="full", error=error)

    def run_nb201_structured(self) -> MutationResult:
        from archlore.search.spaces.nb201 import NB201Space

        req = self.req
        self.answer_tokens = STRUCTURED_ANSWER_TOKENS
        parent = req.parents[0] if req.parents and req.parents[0].arch else None
        base = parent.arch if parent else NB201Space().seeds()[req.seed % len(NB201Space().seeds())]
        system = prompts.render("nb201_system") + "\n" + prompts.render("nb201_structured_format")
        self.messages.append({"role": "system", "content": system})
        instruction = _instruction(req)
        if not instruction and req.idea is None and parent is not None:
            instruction = random.Random(req.seed).choice(NB201_PROMPTS)
        values = dict(
            dataset=req.constraints.dataset, parent_arch=base, cell_table=structured.cell_table(base),
            parent_metrics=_metrics_block(parent.evaluation if parent else None, "Evaluation"),
            idea_block=_idea_block(req.idea, req.chunks) if req.idea else "",
            idea_options=(f"The idea's cell operations: {', '.join(req.idea.cell_ops)}"
                          if req.idea is not None and req.idea.cell_ops else ""),
            history=_history_block(req, parent), avoid=_avoid_line(base, req.avoid),
            instruction=instruction)
        schema = structured.cell_schema()
        scored = set(req.avoid)
        text = self.ask(self.render_within("nb201_structured", values, _RANKED, system),
                        response_format=schema)
        error = ""
        while True:
            try:
                arch, changes = structured.parse_cell(text, base)
                if parent is not None and arch == structured.canonical_arch(base):
                    raise structured.StructuredError(NO_OP)
                if arch in scored and not self.scored_asked:
                    raise structured.StructuredError(SCORED)
                self.notes.append("changes " + ", ".join(f"{c.edge}={c.op}" for c in changes))
                return self.result(arch=arch, mode="structured",
                                   move=",".join(f"{c.edge}={c.op}" for c in changes))
            except structured.StructuredError as e:
                error = str(e)
            if not self.may_retry(error):
                break
            msg = ("Those changes leave the cell as it is; change at least one edge to a "
                   "different op." if error == NO_OP else
                   _SCORED_RETRY.format(answer="the JSON object of changes") if error == SCORED else
                   f"That answer is not valid: {error}\nAnswer with the JSON object only.")
            self.notes.append(f"retry: {error}")
            text = self.ask(msg, response_format=schema)
        if error == NO_OP:
            return self.result(mode="structured", status="no_op",
                               error="the changes leave the parent cell unchanged: a no-op")
        return self.result(mode="structured", error=error)

    # ------------------------------------------------------------------ SWNAS's LLM step

    def run_swnas(self) -> MutationResult:
        from archlore.search.swnas.advisor import observations
        from archlore.search.swnas.messages import render_signals, validate_edits

        req = self.req
        if req.signals is None:
            return self.result(error="swnas request without signals")
        self.answer_tokens = SWNAS_ANSWER_TOKENS
        space = req.signals.space
        system = prompts.render("swnas_open_system" if space == "open" else "swnas_system")
        self.messages.append({"role": "system", "content": system})
        schema = structured.advisor_schema(space)
        text = self.ask(prompts.render("swnas", signals=render_signals(req.signals),
                                       observations="\n".join(observations(req.signals)),
                                       instruction=_instruction(req)), response_format=schema)
        error = ""
        for attempt in range(self.m.max_repair_turns + 1):
            try:
                answer = structured.parse_advice(text, space)
                accepted, rejected = validate_edits(answer.edits, req.signals)
                for edit, why in rejected:
                    target = getattr(edit, "edge", None) or f"stage {getattr(edit, 'stage', '')}"
                    op = getattr(edit, "op", None) or getattr(edit, "block", "")
                    self.notes.append(f"rejected {edit.kind} {op} on {target}: {why}")
                if answer.rationale:
                    self.notes.append("rationale: " + answer.rationale[:300])
                return self.result(mode="structured", space_edits=accepted)
            except structured.StructuredError as e:
                error = str(e)
            if attempt >= self.m.max_repair_turns:
                break
            self.notes.append(f"retry {attempt + 1}: {error}")
            text = self.ask(f"That answer is not valid: {error}\nAnswer with the JSON object "
                            '{"edits": [...], "rationale": "..."} only.', response_format=schema)
        return self.result(mode="structured", error=error)


_SCORED_RETRY = ("That cell was already evaluated in this run (see the list of evaluated "
                 "changes). Propose a different change. Answer with {answer} only.")


def _avoid_line(parent_arch: str, avoid: list[str]) -> str:
    """The parent's already-scored one-edge changes as ``edge=op`` (a compact prompt line)."""
    from archlore.search.spaces.nb201 import ArchError, parse_arch
    from archlore.search.swnas.messages import EDGE_LABELS

    if not avoid:
        return ""
    try:
        base = parse_arch(parent_arch)
    except ArchError:
        return ""
    changes = []
    for arch in avoid:
        try:
            cell = parse_arch(arch)
        except ArchError:
            continue
        diff = [e for e in range(len(base)) if cell[e] != base[e]]
        if len(diff) == 1:
            changes.append(f"{EDGE_LABELS[diff[0]]}={cell[diff[0]]}")
    if not changes:
        return ""
    return ("Already evaluated in this run (do not propose these single changes again): "
            + ", ".join(changes))


def _parse_arch(text: str) -> tuple[str | None, str]:
    """The last valid NB201 arch string in an answer, canonicalised; else (None, why)."""
    found = [m.group(0) for m in ARCH_RE.finditer(text)]
    if not found:
        return None, "the answer holds no arch string like |op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
    try:
        from archlore.search.spaces.nb201 import ArchError, canonical
    except ImportError:  # space not installed: accept the syntactic form
        return ("".join(found[-1].split()), "") if found[-1].count("+") == 2 else \
            (None, f"{found[-1]!r} is not a 3-node cell")
    # Cells on consecutive lines ("|...|\n|...|") come out as one match: try each line's cell
    # too (after the whole match, which may be one cell wrapped over lines).
    tries = []
    for raw in found:
        tries.extend(re.split(r"(?<=\|)[ \t]*\n\s*(?=\|)", raw))
        tries.append(raw)
    last_error = ""
    for raw in reversed(tries):
        try:
            return canonical("".join(raw.split())), ""
        except ArchError as e:
            last_error = last_error or str(e)
    return None, last_error
