"""LLM-driven mutation operators (idea-guided, Pareto-aware, refinement, crossover, repair,
init; NB201 cells) implementing ``search.protocol.Mutator``.

Open space: the model edits the parent's code. In ``mode="delta"`` it answers with
SEARCH/REPLACE blocks (a full-code answer is accepted as fallback); a block that does not apply
is sent back once with the precise reason. The child then passes cheap static checks (syntax,
``class Net``, the evaluator's static policy when available, an optional ``check`` callable);
a failure goes back to the model for at most ``max_repair_turns`` turns. Each result records
``mode`` ("delta" / "full": the form of the answer the final code came from).

NB201 space and SWNAS's advisor step: ``agent/llm_cells.py`` (a cell arch string, JSON cell
changes or JSON space edits). The prompt blocks every template fills: ``agent/llm_prompting.py``.

``BudgetExceeded`` propagates (the run must stop); any other ``LLMError`` becomes
``MutationResult.error``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

from archlore.agent import prompts, structured
from archlore.agent.codeparse import (
    CodeParseError,
    EditApplyError,
    apply_edit_blocks,
    compact_code,
    extract_code,
    has_edit_blocks,
    merge_parent_context,
    parse_edit_blocks,
    prune_to_net,
    same_behaviour,
)
from archlore.agent.llm.base import BudgetExceeded, LLMError, Model
from archlore.agent.llm_cells import CellTurns
from archlore.agent.llm_prompting import (
    _RANKED,
    NO_OP,
    OPEN_PROMPTS,
    SCORED,
    STRUCTURED_ANSWER_TOKENS,
    _constraints_line,
    _contract_values,
    _history_block,
    _idea_block,
    _idea_values,
    _instruction,
    _metrics_block,
    _task_line,
)
from archlore.agent.prompt_budget import answer_cap, estimate_tokens, fit_values, messages_tokens
from archlore.evaluator.policy import parse_source
from archlore.knowledge.schema import Idea
from archlore.search.protocol import Constraints, MutationRequest, MutationResult, ParentInfo, Usage

Check = Callable[[str, Constraints], "str | None"]  # code -> error message, None when fine

MODES = ("delta", "full", "structured")
DELTA_OPERATORS = {"idea", "pareto", "refine", "repair", "mutate", "random"}
TEMPLATES = {"idea": "idea", "pareto": "pareto", "refine": "refine", "crossover": "crossover",
             "repair": "repair", "init": "init", "mutate": "mutate", "random": "mutate"}


class LLMMutator:
    name = "llm"
    uses_paper_text = True  # idea cards carry their paper chunks into the prompt

    def unsupported_reason(self, idea: Idea, space: str) -> str | None:
        return None  # a model can try any idea, with or without structured edits

    def __init__(self, model: Model, mode: Literal["delta", "full", "structured"] = "delta",
                 max_repair_turns: int = 1, edit_retry: bool = True,
                 check: Check | None = None, temperature: float = 0.7,
                 max_tokens: int | None = 4096, context_tokens: int | None = None,
                 noop_retry: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.model = model
        self.mode = mode
        self.max_repair_turns = max_repair_turns
        self.edit_retry = edit_retry
        self.check = check
        self.temperature = temperature
        self.max_tokens = max_tokens  # hard cap on one answer; each task sizes its own below
        self._context_tokens = context_tokens
        self._context_probed = context_tokens is not None
        self.noop_retry = noop_retry
        self.schema_supported: bool | None = None  # False once a server rejected response_format

    @property
    def context_tokens(self) -> int | None:
        """The prompt + answer budget: ``context_tokens`` when given, else the context the
        server reports (llama.cpp /props, vLLM max_model_len, ...), else None (no trimming)."""
        if not self._context_probed:
            self._context_probed = True
            probe = getattr(self.model, "context_window", None)
            try:
                self._context_tokens = probe() if callable(probe) else None
            except Exception:  # a probe is best effort
                self._context_tokens = None
        return self._context_tokens

    # ------------------------------------------------------------------ entry point

    def mutate(self, request: MutationRequest) -> MutationResult:
        session = _Session(self, request)
        try:
            if request.operator == "swnas":
                return session.run_swnas()
            if request.space == "nb201":
                if self.mode == "structured" and request.operator != "crossover":
                    return session.run_nb201_structured()
                return session.run_nb201()
            if self.mode == "structured":
                out = session.run_open_structured()
                if out is not None:
                    return out
                session = _Session(self, request, fallback="delta")
                session.notes.append("structured mode: the parent has no ArchSpec; answered as "
                                     "code (delta)")
            return session.run_open()
        except BudgetExceeded:
            raise
        except LLMError as e:
            return session.result(error=f"LLM call failed: {e}")


class _Session(CellTurns):
    """One mutate() call: the conversation, its usage and transcript."""

    def __init__(self, mutator: LLMMutator, request: MutationRequest,
                 fallback: str | None = None) -> None:
        self.m = mutator
        self.req = request
        self.mode = fallback or mutator.mode
        self.messages: list[dict] = []
        self.usage = Usage()
        self.responses: list[str] = []
        self.notes: list[str] = []
        self.truncated = False  # the last answer stopped at max_tokens
        self.prompt_est = 0  # estimated tokens of the largest prompt sent
        self.trimmed: list[str] = []
        self.answer_tokens = 1024  # expected answer size (the generation cap), set per task
        self.noop_asked = False
        self.scored_asked = False
        self.retries = 0
        self.shown_parent: str | None = None  # the parent as the prompt showed it (compacted)

    @property
    def context(self) -> int | None:
        return self.req.context_tokens or self.m.context_tokens

    def prompt_budget(self, system: str) -> int | None:
        """Tokens the user prompt may take: the context less the system prompt and the
        expected answer."""
        if self.context is None:
            return None
        return max(128, self.context - estimate_tokens(system) - self.answer_tokens - 32)

    def ask(self, content: str, response_format: dict | None = None) -> str:
        self.messages.append({"role": "user", "content": content})
        temperature = self.req.temperature if self.req.temperature is not None \
            else self.m.temperature
        est = messages_tokens(self.messages)
        self.prompt_est = max(self.prompt_est, est)
        cap = answer_cap(self.answer_tokens, self.context, est, self.m.max_tokens)
        if response_format is not None and self.m.schema_supported is False:
            response_format = None
        try:
            reply = self.m.model.chat(self.messages, temperature=temperature, max_tokens=cap,
                                      response_format=response_format)
        except BudgetExceeded:
            raise
        except LLMError as e:
            if response_format is None or "HTTP 4" not in str(e):
                raise
            # the server rejects json_schema: validate-and-retry on plain answers from now on
            self.m.schema_supported = False
            self.notes.append("server rejected response_format; answers validated instead")
            reply = self.m.model.chat(self.messages, temperature=temperature, max_tokens=cap)
        else:
            if response_format is not None:
                self.m.schema_supported = True
        self.usage = self.usage + reply.usage
        self.responses.append(reply.text)
        self.messages.append({"role": "assistant", "content": reply.text})
        self.truncated = reply.finish_reason == "length"
        if self.truncated:
            self.notes.append(f"answer hit the generation cap ({cap} tokens)")
        return reply.text

    def may_retry(self, error: str) -> bool:
        """One more structured turn? A no-op gets one retry (``noop_retry``), an invalid
        answer up to ``max_repair_turns``."""
        if error == NO_OP:
            if not self.m.noop_retry or self.noop_asked:
                return False
            self.noop_asked = True
            return True
        if error == SCORED:  # one more try; a second scored cell goes on (the engine skips it)
            self.scored_asked = True
            return True
        if self.retries >= self.m.max_repair_turns:
            return False
        self.retries += 1
        return True

    def restart(self, system: str) -> None:
        """A fresh conversation (repair turns: parent, child and error in one prompt, instead
        of an ever-growing transcript a small context cannot hold)."""
        self.messages = [{"role": "system", "content": system}]

    def result(self, code: str | None = None, arch: str | None = None,
               mode: str = "full", error: str | None = None, status: str | None = None,
               space_edits: list | None = None, move: str | None = None) -> MutationResult:
        prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages
                             if m["role"] != "assistant")
        if status is None:
            status = "ok" if (code or arch or space_edits is not None) else "error"
        notes = list(self.notes)
        if self.prompt_est:
            budget = f" of {self.context} context" if self.context else ""
            notes.append(f"prompt ~{self.prompt_est} tokens{budget}"
                         + (f" (trimmed: {', '.join(self.trimmed)})" if self.trimmed else ""))
        return MutationResult(status=status, code=code, arch=arch, mode=mode, prompt=prompt,
                              response="\n\n----- next turn -----\n\n".join(self.responses),
                              usage=self.usage.model_copy(
                                  update={"trimmed_prompts": int(bool(self.trimmed))}),
                              error=error, notes="; ".join(notes),
                              space_edits=space_edits or [], move=move,
                              prompt_tokens_est=self.prompt_est, prompt_trimmed=self.trimmed)

    # ------------------------------------------------------------------ open space (code)

    def run_open(self) -> MutationResult:
        req = self.req
        parent = req.parents[0] if req.parents else None
        if req.operator not in ("init",) and (parent is None or not parent.code.strip()):
            return self.result(error=f"operator {req.operator!r} needs a parent with code")
        if req.operator == "crossover" and len(req.parents) < 2:
            return self.result(error="crossover needs two parents")
        delta = (self.mode == "delta" and req.operator in DELTA_OPERATORS
                 and parent is not None)
        system = prompts.render("system_open", **_contract_values(req.constraints))
        system += "\n" + prompts.render("format_delta" if delta else "format_full")
        self.messages.append({"role": "system", "content": system})
        self.answer_tokens = _code_answer_tokens(req)
        text = self.ask(self.user_prompt(system))
        base = self.shown_parent or (parent.code if parent is not None else "")
        code, mode, error = self.parse_answer(text, base, allow_retry=self.m.edit_retry)
        code, error = self.after_parse(code, error)
        if error == NO_OP and self.m.noop_retry:
            self.notes.append("answer repeated the parent; asked once more for a change")
            text = self.ask(prompts.render("noop_retry", task=_task_line(req)))
            code, mode, error = self.parse_answer(text, base, allow_retry=False)
            code, error = self.after_parse(code, error)
        if error == NO_OP:
            return self.result(mode=mode, status="no_op", error=self.noop_reason())
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
            self.restart(system)
            self.ask(self.fix_prompt(system, code, self.responses[-1], error or ""))
            fixed, fixed_mode, error = self.parse_answer(self.responses[-1], code or base,
                                                         allow_retry=False)
            fixed, error = self.after_parse(fixed, error)
            if error == NO_OP:
                return self.result(mode=mode, status="no_op", error=self.noop_reason())
            if fixed is not None:
                code, mode = fixed, fixed_mode if code is None else mode
            else:
                code = None
        return self.result(mode=mode, error=error)

    def noop_reason(self) -> str:
        return ("the answer is the parent unchanged (same code after dropping comments, "
                "docstrings and formatting): a no-op, not a new candidate")

    def after_parse(self, code: str | None, error: str | None) -> tuple[str | None, str | None]:
        """Merge back the parent's imports/helpers the answer dropped; flag parent echoes."""
        if code is None:
            return None, error
        for p in self.req.parents:
            if p.code:
                code, added = merge_parent_context(code, p.code)
                if added:
                    self.notes.append("restored from the parent: " + ", ".join(added))
        if self.req.operator != "init" and any(p.code and same_behaviour(code, p.code)
                                               for p in self.req.parents):
            return None, NO_OP
        return code, None

    def fix_prompt(self, system: str, child: str | None, answer: str, error: str) -> str:
        """Parent (what worked), child (what was checked) and the error, within the budget."""
        parent = self.req.parents[0] if self.req.parents else None
        parent_code = parent.code.rstrip() if parent is not None and self.req.operator != \
            "repair" else (self.req.parents[1].code.rstrip() if len(self.req.parents) > 1 else "")
        child_text = (child or "").rstrip() or answer.strip()[:2000]
        values = dict(error=error.strip(), child_code=child_text,
                      parent_block=(f"## The parent network (it works)\n```python\n{parent_code}\n```"
                                    if parent_code else ""),
                      task=_task_line(self.req))
        return self.render_within("fix", values, [("parent_block", None)], system)

    def render_within(self, template: str, values: dict,
                      ranked: list[tuple[str, str | None]], system: str) -> str:
        fitted = fit_values(lambda v: prompts.render(template, **v), values, ranked,
                            self.prompt_budget(system))
        for t in fitted.trimmed:
            if t not in self.trimmed:
                self.trimmed.append(t)
        return fitted.text

    def parse_answer(self, text: str, base: str,
                     allow_retry: bool) -> tuple[str | None, str, str | None]:
        """(code, mode, error). SEARCH/REPLACE answers apply to ``base``; else full code."""
        if self.truncated:
            return None, "delta" if has_edit_blocks(text) else "full", (
                "the answer was truncated at the generation cap; answer shorter "
                "(SEARCH/REPLACE blocks for small edits)")
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

    def user_prompt(self, system: str = "") -> str:
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
            origin_block="",
        )
        if req.idea is not None:
            values.update(_idea_values(req.idea, req.chunks))
        if req.operator == "crossover":
            other = req.parents[1]
            values.update(other_code=other.code.rstrip(),
                          other_metrics=_metrics_block(other.evaluation, "Parent B evaluation"))
        if req.operator == "repair" and len(req.parents) > 1 and req.parents[1].code:
            values["origin_block"] = ("## The parent it was derived from (this one worked)\n"
                                      f"```python\n{req.parents[1].code.rstrip()}\n```")
        if req.operator in ("mutate", "random") and not values["instruction"]:
            values["instruction"] = random.Random(req.seed).choice(OPEN_PROMPTS)
        template = TEMPLATES[req.operator]
        if req.operator == "idea" and req.idea is None:
            template = "pareto"
            values["instruction"] = values["instruction"] or "Improve accuracy within the constraints."
        budget = self.prompt_budget(system)
        if budget is not None and parent.code and \
                estimate_tokens(prompts.render(template, **values)) > budget:
            # lossless first: the parent(s) without docstrings, comments, unused helpers; delta
            # answers then apply to this compact text (the helpers are merged back after)
            self.shown_parent = compact_code(parent.code)
            values["parent_code"] = self.shown_parent.rstrip()
            if req.operator == "crossover":
                values["other_code"] = compact_code(req.parents[1].code).rstrip()
            self.trimmed.append("parent code (compacted: no docstrings, comments, unused "
                                "helpers)")
        return self.render_within(template, values, _RANKED, system)

    # ------------------------------------------------------------------ open space (structured)

    def run_open_structured(self) -> MutationResult | None:
        """JSON edits of the parent's ArchSpec; None when the parent has no spec (code mode)."""
        from archlore.search.spaces.open import OpenSpace

        req = self.req
        space = OpenSpace()
        if req.operator == "init" or not req.parents:
            seeds = space.seeds(req.constraints)
            spec = seeds[req.seed % len(seeds)]
            parent = None
        else:
            parent = req.parents[0]
            spec = structured.parent_spec(parent, req.constraints)
            if spec is None:
                return None
        other = None
        if req.operator == "crossover":
            other = structured.parent_spec(req.parents[1], req.constraints) \
                if len(req.parents) > 1 else None
            if other is None:
                return None
        self.answer_tokens = STRUCTURED_ANSWER_TOKENS
        system = prompts.render("structured_system", grammar=structured.grammar_rules(),
                                **_contract_values(req.constraints))
        self.messages.append({"role": "system", "content": system})
        values = self.structured_values(parent, spec)
        values["grammar"] = structured.grammar_text(spec)
        if other is not None:  # crossover: edit parent A towards what works in parent B
            values["grammar"] = ("Parent A (edit this one):\n" + values["grammar"]
                                 + "\n" + _metrics_block(req.parents[1].evaluation,
                                                          "Parent B evaluation")
                                 + "\nParent B " + structured.grammar_text(other)[8:])
            values["task"] = ("Combine the two parents: give edits that bring Parent B's "
                              "best features into Parent A.")
        text = self.ask(self.render_within("structured_open", values, _RANKED, system),
                        response_format=structured.open_schema(spec))
        error = ""
        while True:
            try:
                child, edits = structured.parse_open(text, spec)
                if child.key() == spec.key():
                    raise structured.StructuredError(NO_OP)
                child, moves = space.fit_steps(child, req.constraints)
                if moves:
                    self.notes.append("shrunk to fit the caps: " + ", ".join(moves))
                if parent is not None and (child.key() == spec.key() or (
                        other is not None and child.key() == other.key())):
                    raise structured.StructuredError(NO_OP)
                code = space.render(child, req.constraints)
                error = self.static_error(code) or ""
                if not error:
                    self.notes.append("edits " + structured.edits_json(edits))
                    return self.result(code=code, arch=child.to_json(), mode="structured",
                                       move=_move_name(edits))
            except structured.StructuredError as e:
                error = str(e)
            except ValueError as e:  # fit_steps: no way down to the caps
                error = f"the edited network cannot be shrunk to the caps: {e}"
            if not self.may_retry(error):
                break
            if error == NO_OP:
                self.notes.append("edits changed nothing; asked once more")
                msg = ("Those edits leave the network unchanged (the values are already set). "
                       "Give edits that change it. " + _task_line(req))
            else:
                self.notes.append(f"retry {self.retries}: {error}")
                msg = (f"Those edits are not valid: {error}\nAnswer again with the JSON object "
                       '{"edits": [...], "rationale": "..."} only.')
            text = self.ask(msg, response_format=structured.open_schema(spec))
        if error == NO_OP:
            return self.result(mode="structured", status="no_op",
                               error="the edits leave the parent unchanged: a no-op")
        return self.result(mode="structured", error=error)

    def structured_values(self, parent: ParentInfo | None, spec) -> dict:
        req = self.req
        idea = req.idea
        options = ""
        if idea is not None and idea.edits:
            options = ("The idea's own edits (use them as they are, or adapt them):\n"
                       + structured.edits_json(idea.edits))
        task = _task_line(req)
        return dict(
            parent_metrics=_metrics_block(parent.evaluation if parent else None,
                                          "Parent evaluation"),
            history=_history_block(req, parent),
            instruction=_instruction(req) if req.operator != "repair" else
            f"The network failed: {req.failure.describe() if req.failure else 'unknown'}; "
            "fix it with edits (e.g. shrink it when over a cap).",
            constraints_line=_constraints_line(req.constraints),
            idea_block=_idea_block(idea, req.chunks) if idea else "",
            idea_options=options, task=task)



# ---------------------------------------------------------------------- helpers


def _code_answer_tokens(req: MutationRequest) -> int:
    """Generation cap for a code answer: the (largest) parent's size plus room for the
    change (a delta answer may fall back to full code, so the same cap); init: 1,024."""
    sizes = [estimate_tokens(p.code) for p in req.parents if p.code]
    if not sizes:
        return 1024
    return int(max(sizes) * 1.4) + 256



def _move_name(edits: list) -> str:
    return ";".join(f"{e.op}:{e.path}" if e.path else e.op for e in edits)[:120]


def _finalize(code: str) -> str:
    try:
        tree = parse_source(code)
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
            parse_source(code)
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
