"""LLM-driven mutation operators (idea-guided, Pareto-aware, refinement, crossover, repair,
init; NB201 cells) implementing ``search.protocol.Mutator``.

Open space: the model edits the parent's code. In ``mode="delta"`` it answers with
SEARCH/REPLACE blocks (a full-code answer is accepted as fallback); a block that does not apply
is sent back once with the precise reason. The child then passes cheap static checks (syntax,
``class Net``, the evaluator's static policy when available, an optional ``check`` callable);
a failure goes back to the model for at most ``max_repair_turns`` turns. Each result records
``mode`` ("delta" / "full": the form of the answer the final code came from).

NB201 space: the model answers with a cell arch string (LLMatic's NAS-Bench-201 prompts),
validated by ``search.spaces.nb201``.

``BudgetExceeded`` propagates (the run must stop); any other ``LLMError`` becomes
``MutationResult.error``.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from typing import Literal

from archlore.agent import prompts
from archlore.agent.codeparse import (
    CodeParseError,
    EditApplyError,
    apply_edit_blocks,
    extract_code,
    has_edit_blocks,
    parse_edit_blocks,
    prune_to_net,
)
from archlore.agent.llm.base import BudgetExceeded, LLMError, Model
from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from archlore.search.protocol import Constraints, MutationRequest, MutationResult, ParentInfo, Usage

Check = Callable[[str, Constraints], "str | None"]  # code -> error message, None when fine

DELTA_OPERATORS = {"idea", "pareto", "refine", "repair", "mutate", "random"}
TEMPLATES = {"idea": "idea", "pareto": "pareto", "refine": "refine", "crossover": "crossover",
             "repair": "repair", "init": "init", "mutate": "mutate", "random": "mutate"}
# LLMatic (appendix): mutation prompts for the open space and for NAS-Bench-201 cells.
OPEN_PROMPTS = (
    "Add a layer to improve the above network",
    "Delete a layer to improve the above network",
    "Increase the width of the above network",
    "Decrease the width of the above network",
    "Add residual connections to improve the above network",
    "Add normalization layer to improve the above network",
    "Add dropout layer to improve the above network",
)
NB201_PROMPTS = (
    "Add ReLU, 3x3 convolutional layer and Batch normalization layer to improve the above network",
    "Add ReLU, 1x1 convolutional layer and Batch normalization layer to improve the above network",
    "Delete a layer to improve the above network",
    "Add 3x3 average pooling layer to improve the above network",
    "Add skip connection to improve the above network",
    "Delete a layer to improve the above network and add ReLU, 3x3 convolutional layer and "
    "Batch normalization layer",
    "Delete a layer to improve the above network and add ReLU, 1x1 convolutional layer and "
    "Batch normalization layer",
    "Delete a layer to improve the above network and add 3x3 average pooling layer",
    "Delete a layer to improve the above network and add skip connection",
)
ARCH_RE = re.compile(r"\|[A-Za-z0-9_~|+\s]+\|")


class LLMMutator:
    name = "llm"
    uses_paper_text = True  # idea cards carry their paper chunks into the prompt

    def unsupported_reason(self, idea: Idea, space: str) -> str | None:
        return None  # a model can try any idea, with or without structured edits

    def __init__(self, model: Model, mode: Literal["delta", "full"] = "delta",
                 max_repair_turns: int = 1, edit_retry: bool = True,
                 check: Check | None = None, temperature: float = 0.7,
                 max_tokens: int | None = 4096) -> None:
        if mode not in ("delta", "full"):
            raise ValueError(f"mode must be 'delta' or 'full', got {mode!r}")
        self.model = model
        self.mode = mode
        self.max_repair_turns = max_repair_turns
        self.edit_retry = edit_retry
        self.check = check
        self.temperature = temperature
        self.max_tokens = max_tokens

    # ------------------------------------------------------------------ entry point

    def mutate(self, request: MutationRequest) -> MutationResult:
        session = _Session(self, request)
        try:
            if request.space == "nb201":
                return session.run_nb201()
            return session.run_open()
        except BudgetExceeded:
            raise
        except LLMError as e:
            return session.result(error=f"LLM call failed: {e}")


class _Session:
    """One mutate() call: the conversation, its usage and transcript."""

    def __init__(self, mutator: LLMMutator, request: MutationRequest) -> None:
        self.m = mutator
        self.req = request
        self.messages: list[dict] = []
        self.usage = Usage()
        self.responses: list[str] = []
        self.notes: list[str] = []
        self.truncated = False  # the last answer stopped at max_tokens

    def ask(self, content: str) -> str:
        self.messages.append({"role": "user", "content": content})
        temperature = self.req.temperature if self.req.temperature is not None \
            else self.m.temperature
        reply = self.m.model.chat(self.messages, temperature=temperature,
                                  max_tokens=self.m.max_tokens)
        self.usage = self.usage + reply.usage
        self.responses.append(reply.text)
        self.messages.append({"role": "assistant", "content": reply.text})
        self.truncated = reply.finish_reason == "length"
        if self.truncated:
            self.notes.append("answer hit max_tokens")
        return reply.text

    def result(self, code: str | None = None, arch: str | None = None,
               mode: str = "full", error: str | None = None) -> MutationResult:
        prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages
                             if m["role"] != "assistant")
        return MutationResult(status="ok" if (code or arch) else "error", code=code, arch=arch,
                              mode=mode, prompt=prompt,
                              response="\n\n----- next turn -----\n\n".join(self.responses),
                              usage=self.usage, error=error, notes="; ".join(self.notes))

    # ------------------------------------------------------------------ open space

    def run_open(self) -> MutationResult:
        req = self.req
        parent = req.parents[0] if req.parents else None
        if req.operator not in ("init",) and (parent is None or not parent.code.strip()):
            return self.result(error=f"operator {req.operator!r} needs a parent with code")
        if req.operator == "crossover" and len(req.parents) < 2:
            return self.result(error="crossover needs two parents")
        delta = (self.m.mode == "delta" and req.operator in DELTA_OPERATORS
                 and parent is not None)
        system = prompts.render("system_open", **_contract_values(req.constraints))
        system += "\n" + prompts.render("format_delta" if delta else "format_full")
        self.messages.append({"role": "system", "content": system})
        base = parent.code if parent is not None else ""
        text = self.ask(self.user_prompt())
        code, mode, error = self.parse_answer(text, base, allow_retry=self.m.edit_retry)
        turns = 0
        while True:
            if code is not None:
                error = self.static_error(code)
                if error is None:
                    return self.result(code=code, mode=mode)
            if turns >= self.m.max_repair_turns:
                break
            turns += 1
            self.notes.append(f"repair turn {turns}: {error}")
            text = self.ask(prompts.render("check_retry", reason=error))
            fixed, fixed_mode, error = self.parse_answer(text, code or base, allow_retry=False)
            if fixed is not None:
                code, mode = fixed, fixed_mode if code is None else mode
            else:
                code = None
        return self.result(mode=mode, error=error)

    def parse_answer(self, text: str, base: str,
                     allow_retry: bool) -> tuple[str | None, str, str | None]:
        """(code, mode, error). SEARCH/REPLACE answers apply to ``base``; else full code."""
        if self.truncated:
            return None, "delta" if has_edit_blocks(text) else "full", (
                f"the answer was truncated at max_tokens={self.m.max_tokens}; answer shorter "
                f"(SEARCH/REPLACE blocks for small edits)")
        if has_edit_blocks(text) and base:
            try:
                edited = apply_edit_blocks(base, parse_edit_blocks(text))
                return _finalize(edited), "delta", None
            except (EditApplyError, CodeParseError) as e:
                if not allow_retry:
                    return None, "delta", f"edit blocks did not apply: {e}"
                self.notes.append(f"edit retry: {e}")
                text = self.ask(prompts.render("edit_retry", reason=str(e)))
                return self.parse_answer(text, base, allow_retry=False)
        try:
            return extract_code(text), "full", None
        except CodeParseError as e:
            return None, "full", str(e)

    def static_error(self, code: str) -> str | None:
        error = _policy_error(code)
        if error is None and self.m.check is not None:
            error = self.m.check(code, self.req.constraints)
        return error

    def user_prompt(self) -> str:
        req = self.req
        parent = req.parents[0] if req.parents else ParentInfo()
        values = dict(
            parent_code=parent.code.rstrip(),
            parent_metrics=_metrics_block(parent.evaluation, "Parent evaluation"),
            history=_history_block(req, parent),
            instruction=_instruction(req),
            constraints_line=_constraints_line(req.constraints),
            idea_block=_idea_block(req.idea, req.chunks) if req.idea else "",
            error=(req.failure.describe() if req.failure else "unknown error").strip(),
        )
        if req.idea is not None:
            values.update(_idea_values(req.idea, req.chunks))
        if req.operator == "crossover":
            other = req.parents[1]
            values.update(other_code=other.code.rstrip(),
                          other_metrics=_metrics_block(other.evaluation, "Parent B evaluation"))
        if req.operator in ("mutate", "random") and not values["instruction"]:
            values["instruction"] = random.Random(req.seed).choice(OPEN_PROMPTS)
        template = TEMPLATES[req.operator]
        if req.operator == "idea" and req.idea is None:
            template = "pareto"
            values["instruction"] = values["instruction"] or "Improve accuracy within the constraints."
        return prompts.render(template, **values)

    # ------------------------------------------------------------------ NB201

    def run_nb201(self) -> MutationResult:
        req = self.req
        self.messages.append({"role": "system", "content": prompts.render("nb201_system")})
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
        text = self.ask(prompts.render(
            template, dataset=req.constraints.dataset,
            parent_arch=parent.arch if parent else "",
            parent_metrics=_metrics_block(parent.evaluation if parent else None, "Evaluation"),
            other_arch=other.arch if other else "",
            other_metrics=_metrics_block(other.evaluation if other else None, "Evaluation"),
            idea_block=_idea_block(req.idea, req.chunks) if req.idea else "",
            history=_history_block(req, parent),
            instruction=instruction))
        for turn in range(self.m.max_repair_turns + 1):
            arch, error = _parse_arch(text)
            if arch is not None:
                return self.result(arch=arch, mode="full")
            if turn == self.m.max_repair_turns:
                break
            self.notes.append(f"repair turn {turn + 1}: {error}")
            text = self.ask(f"That is not a valid cell: {error}\n"
                            "Answer with one line `ARCH: |op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.")
        return self.result(mode="full", error=error)


# ---------------------------------------------------------------------- helpers


def _finalize(code: str) -> str:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise CodeParseError(f"after applying the edits: syntax error at line {e.lineno}: "
                             f"{e.msg}: {(e.text or '').strip()[:80]!r}") from e
    return prune_to_net(tree, "Net", code)


def _policy_error(code: str) -> str | None:
    """The evaluator's static policy verdict, when that module is installed."""
    try:
        from archlore.evaluator import policy
    except ImportError:
        try:
            ast.parse(code)
        except SyntaxError as e:
            return f"syntax error at line {e.lineno}: {e.msg}"
        return None
    return policy_verdict(policy, code)


def policy_verdict(policy, code: str) -> str | None:
    """Adapter over evaluator.policy's checker: returns the rejection reason or None."""
    fn = next((getattr(policy, n) for n in ("check_source", "check_code", "check_policy",
                                            "check") if hasattr(policy, n)), None)
    if fn is None:
        return None
    try:
        verdict = fn(code)
    except Exception as e:  # a policy that raises on rejection
        return f"rejected by the static policy: {e}"
    if verdict is None or verdict is True:
        return None
    if isinstance(verdict, str):
        return verdict or None
    if isinstance(verdict, (list, tuple)):
        return "; ".join(map(str, verdict)) or None
    ok = getattr(verdict, "ok", None)
    if ok is True:
        return None
    reason = getattr(verdict, "reason", None) or getattr(verdict, "violations", None)
    return f"rejected by the static policy: {reason}" if ok is False or reason else None


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


def _contract_values(c: Constraints) -> dict:
    return dict(num_classes=c.num_classes, in_channels=c.in_channels, image_size=c.image_size,
                dataset=c.dataset, cost_limits=_constraints_line(c))


def _constraints_line(c: Constraints) -> str:
    parts = []
    if c.max_mmacs is not None:
        parts.append(f"stay under {c.max_mmacs:g} MMACs (millions of multiply-accumulates "
                     f"per image)")
    if c.max_params is not None:
        parts.append(f"stay under {c.max_params:,} parameters")
    return ("Hard limits: " + " and ".join(parts) + ".") if parts else ""


def _metrics_block(ev: Evaluation | None, title: str) -> str:
    if ev is None:
        return ""
    items = [f"status {ev.status}"]
    if ev.val_acc is not None:
        items.append(f"validation accuracy {ev.val_acc:.4f}")
    if ev.macs is not None:
        items.append(f"{ev.macs / 1e6:.3f} MMACs per image")
    if ev.params is not None:
        items.append(f"{ev.params:,} parameters")
    # no wall-clock times here: prompts must be reproducible for cassette replay
    if ev.loss_curve:
        curve = ev.loss_curve
        items.append(f"loss {curve[0]:.3f} -> {curve[-1]:.3f} over {len(curve)} points")
    if ev.status != "ok" and ev.reason:
        items.append(f"{ev.stage} stage: {ev.reason[:300]}")
    return f"{title}: " + "; ".join(items) + "."


def _instruction(req: MutationRequest) -> str:
    """The request's free text (a user's or LLMatic's prompt), else its goal as a sentence."""
    if req.instruction:
        return req.instruction
    return req.goal.describe() if req.goal is not None else ""


def _history_block(req: MutationRequest, parent: ParentInfo | None, limit: int = 8) -> str:
    """How the idea and this lineage have fared, rendered from the typed records."""
    feedback = [req.idea_record.describe()] if req.idea_record is not None else []
    feedback += [o.describe() for o in (parent.history if parent else [])]
    if not feedback:
        return ""
    lines = "\n".join(f"- {f}" for f in feedback[-limit:])
    return f"## Lineage feedback (oldest first)\n{lines}\n"


def _idea_values(idea: Idea, chunks: list[str]) -> dict:
    details = []
    if idea.operator:
        details.append(f"Operator: {idea.operator}")
    if idea.kernel_sizes:
        details.append(f"Kernel sizes: {', '.join(map(str, idea.kernel_sizes))}")
    if idea.ratios:
        details.append("Ratios: " + ", ".join(f"{k}={v:g}" for k, v in idea.ratios.items()))
    if idea.applies_to:
        details.append(f"Applies to: {', '.join(idea.applies_to)}")
    if idea.effect.reported:
        details.append(f"Reported effect: {idea.effect.reported}")
    if idea.code_hint:
        details.append(f"Hint: {idea.code_hint}")
    evidence = []
    for p in idea.provenance[:2]:
        where = p.title or p.paper_id
        page = f", p. {p.page}" if p.page else ""
        if p.quote:
            evidence.append(f'Evidence: "{p.quote}" ({where}{page})')
        else:
            evidence.append(f"Source: {where}{page}")
    chunk_text = ""
    if chunks:
        chunk_text = "## Supporting text from the paper\n" + "\n".join(
            "> " + " ".join(c.split())[:800] for c in chunks[:3])
    return dict(idea_name=idea.name, idea_category=idea.category.value,
                idea_description=idea.description, idea_details="\n".join(details),
                provenance="\n".join(evidence), chunks=chunk_text)


def _idea_block(idea: Idea, chunks: list[str]) -> str:
    v = _idea_values(idea, chunks)
    return "\n".join(x for x in (
        f"## Design idea to use: {v['idea_name']} ({v['idea_category']})",
        v["idea_description"], v["idea_details"], v["provenance"], v["chunks"]) if x)


def valid_rate_by_mode(candidates: list) -> dict[str, dict[str, float]]:
    """Per answer form ("delta" / "full" / "offline"): candidates, valid ones and the valid
    rate, over evaluated (non-duplicate) candidates produced by a mutator. A delta answer that
    needed a full-code fallback counts as "full" (the form the code came from)."""
    stats: dict[str, dict[str, float]] = {}
    for c in candidates:
        if c.mode in ("delta", "full", "offline") and c.status == "evaluated":
            s = stats.setdefault(c.mode, {"n": 0, "valid": 0, "valid_rate": 0.0})
            s["n"] += 1
            s["valid"] += int(c.valid)
            s["valid_rate"] = s["valid"] / s["n"]
    return stats
