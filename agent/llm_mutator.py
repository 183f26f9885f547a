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
from archlore.agent.prompt_budget import answer_cap, estimate_tokens, fit_values, messages_tokens
from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from archlore.search.protocol import Constraints, MutationRequest, MutationResult, ParentInfo, Usage

Check = Callable[[str, Constraints], "str | None"]  # code -> error message, None when fine

MODES = ("delta", "full", "structured")
NO_OP = "__no_op__"  # internal marker: the answer is the parent unchanged
SCORED = "__scored__"  # internal marker: the answer is a cell the run already scored
STRUCTURED_ANSWER_TOKENS = 256  # a JSON edit list (1-4 edits and a sentence)
NB201_ANSWER_TOKENS = 160  # one ARCH line (and a sentence)
SWNAS_ANSWER_TOKENS = 640  # up to 12 edits with reasons
# Prompt parts that may be trimmed to fit the budget, cut first to last: (value, summary).
# The task, the goal, the constraints and the parent are never cut.
_RANKED: list[tuple[str, str | None]] = [
    ("history", None), ("chunks", None), ("origin_block", None), ("provenance", None),
    ("idea_options", None), ("other_metrics", None), ("avoid", None), ("parent_metrics", None),
    ("idea_details", None), ("idea_block", "summary"),
]
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


class _Session:
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

    # ------------------------------------------------------------------ NB201

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
                text = self.ask(_SCORED_RETRY.replace("the JSON object of changes",
                                                      "one line `ARCH: |...|+|...|+|...|`"))
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
                   "different op." if error == NO_OP else _SCORED_RETRY if error == SCORED else
                   f"That answer is not valid: {error}\nAnswer with the JSON object only.")
            self.notes.append(f"retry: {error}")
            text = self.ask(msg, response_format=schema)
        if error == NO_OP:
            return self.result(mode="structured", status="no_op",
                               error="the changes leave the parent cell unchanged: a no-op")
        return self.result(mode="structured", error=error)

    # ------------------------------------------------------------------ SWNAS's LLM step

    def run_swnas(self) -> MutationResult:
        from archlore.search.swnas.messages import render_signals, validate_edits

        req = self.req
        if req.signals is None:
            return self.result(error="swnas request without signals")
        self.answer_tokens = SWNAS_ANSWER_TOKENS
        system = prompts.render("swnas_system")
        self.messages.append({"role": "system", "content": system})
        schema = structured.advisor_schema()
        text = self.ask(prompts.render("swnas", signals=render_signals(req.signals),
                                       instruction=_instruction(req)), response_format=schema)
        error = ""
        for attempt in range(self.m.max_repair_turns + 1):
            try:
                answer = structured.parse_advice(text)
                accepted, rejected = validate_edits(answer.edits, req.signals)
                for edit, why in rejected:
                    self.notes.append(f"rejected {edit.kind} {getattr(edit, 'op', '')} on "
                                      f"{getattr(edit, 'edge', '')}: {why}")
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


# ---------------------------------------------------------------------- helpers


def _code_answer_tokens(req: MutationRequest) -> int:
    """Generation cap for a code answer: the (largest) parent's size plus room for the
    change (a delta answer may fall back to full code, so the same cap); init: 1,024."""
    sizes = [estimate_tokens(p.code) for p in req.parents if p.code]
    if not sizes:
        return 1024
    return int(max(sizes) * 1.4) + 256


_SCORED_RETRY = ("That cell was already evaluated in this run (see the list of evaluated "
                 "changes). Propose a different change. Answer with the JSON object of changes "
                 "only.")


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


def _task_line(req: MutationRequest) -> str:
    """The change asked for, in one sentence (for retry prompts)."""
    if req.idea is not None and req.operator != "pareto":
        return f"Apply the idea {req.idea.name!r}: {req.idea.description[:200]}"
    text = _instruction(req)
    if text:
        return text
    if req.operator == "repair":
        return "Fix the error with the smallest change."
    return "Improve the network with one focused change."


def _move_name(edits: list) -> str:
    return ";".join(f"{e.op}:{e.path}" if e.path else e.op for e in edits)[:120]


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
