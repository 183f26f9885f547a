"""Structured-edit mode: the LLM answers with JSON edits, the engine applies and renders them.

Open space: the parent is an ``ArchSpec``; the answer is ``{"edits": [ArchEdit...],
"rationale": str}`` in the edit grammar of ``search.spaces.open_spec`` (``path`` + ``op`` +
``value``). NB201: the answer is ``{"changes": [{"edge": "2<-1", "op": "nor_conv_3x3"}],
"rationale": str}`` (each change sets one edge of the parent cell). SWNAS's LLM step:
``search.swnas.messages.AdvisorAnswer``. Each answer form has a JSON schema sent as
``response_format`` (OpenAI, vLLM, llama.cpp and Ollama constrain decoding with it); the
answer is validated here in any case, so a server that ignores the schema is handled by
validate-and-retry.

Parse failures raise :class:`StructuredError` with a reason precise enough to send back.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from archlore.knowledge.schema import ArchEdit
from pydantic import BaseModel, Field, ValidationError

EDIT_OPS = ("set", "scale", "add", "append_stage", "remove_stage")


class StructuredError(ValueError):
    """The JSON answer is unusable; the message says why (sent back to the model)."""


class OpenEdits(BaseModel):
    edits: list[ArchEdit] = Field(default_factory=list, max_length=8)
    rationale: str = ""


class CellChange(BaseModel):
    edge: str
    op: str


class CellEdits(BaseModel):
    changes: list[CellChange] = Field(default_factory=list, max_length=6)
    rationale: str = ""


def json_object(text: str) -> Any:
    """The outermost JSON object of an answer (fences and prose around it are tolerated)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise StructuredError(f"the answer holds no JSON object (it starts {text[:80]!r})")
    try:
        return json.loads(text[start:end + 1])
    except json.JSONDecodeError as e:
        raise StructuredError(f"the JSON does not parse: {e.msg} at character {e.pos}") from e


def schema_format(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": False,
                                                   "schema": schema}}


# ---------------------------------------------------------------------------- open space


def _field_choices(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    ann = info.annotation
    if typing.get_origin(ann) is typing.Literal:
        return "|".join(map(str, typing.get_args(ann)))
    if ann is bool:
        return "true|false"
    lo = hi = None
    for meta in info.metadata:
        lo = getattr(meta, "ge", lo)
        hi = getattr(meta, "le", hi)
    kind = "int" if ann is int else "number"
    return f"{kind} {lo:g}..{hi:g}" if lo is not None and hi is not None else kind


def edit_paths(spec) -> list[str]:
    """Every path the grammar accepts for ``spec`` (the schema's enum)."""
    from archlore.search.spaces.open_spec import ArchSpec, Head, Init, Stage, Stem

    paths = [n for n, f in ArchSpec.model_fields.items()
             if n not in ("name", "stem", "stages", "head", "init")]
    for prefix, model in (("stem", Stem), ("head", Head), ("init", Init)):
        paths += [f"{prefix}.{n}" for n in model.model_fields]
    stage_fields = list(Stage.model_fields)
    for index in ["*", *map(str, range(len(spec.stages))), "-1"]:
        paths += [f"stages[{index}].{n}" for n in stage_fields]
    return paths


def grammar_rules() -> str:
    """The edit grammar and every field's choices: the same for every request, so it goes in
    the system prompt (a server's prompt cache then reuses its prefill)."""
    from archlore.search.spaces.open_spec import ArchSpec, Head, Init, Stage, Stem

    def choices(model, prefix: str, skip=()) -> str:
        return "; ".join(f"{prefix}{n} ({_field_choices(model, n)})"
                         for n in model.model_fields if n not in skip)

    return "\n".join([
        "Edit grammar: each edit is {\"op\": OP, \"path\": PATH, \"value\": V}. OP: set "
        "(path = V), scale (number path *= V), add (number path += V), append_stage (V: a dict "
        "of stage fields, others copied from the last stage; path \"\"), remove_stage (V: "
        "stage index; path \"\"). Stage paths: stages[i].FIELD, stages[-1].FIELD, "
        "stages[*].FIELD (all stages).",
        "Fields and their choices:",
        "- " + choices(ArchSpec, "", skip=("name", "stem", "stages", "head", "init")),
        "- " + choices(Stem, "stem."),
        "- " + choices(Head, "head."),
        "- " + choices(Init, "init."),
        "- stages[i]: " + choices(Stage, ""),
    ])


def grammar_text(spec) -> str:
    """The parent's current values, compactly (for the user prompt)."""
    from archlore.search.spaces.open_spec import ArchSpec, Head, Init, Stage, Stem

    def values(model, obj, prefix: str, skip=()) -> str:
        return ", ".join(f"{prefix}{n}={getattr(obj, n)!s}"
                         for n in model.model_fields if n not in skip)

    lines = ["Current network:",
             "- " + values(ArchSpec, spec, "", skip=("name", "stem", "stages", "head", "init")),
             "- " + values(Stem, spec.stem, "stem.") + "; " + values(Head, spec.head, "head.")
             + "; " + values(Init, spec.init, "init.")]
    for i, st in enumerate(spec.stages):
        lines.append(f"- stages[{i}]: " + ", ".join(f"{n}={getattr(st, n)!s}"
                                                    for n in Stage.model_fields))
    return "\n".join(lines)


def open_schema(spec) -> dict:
    value = {"type": ["string", "number", "boolean", "object", "null"]}
    return schema_format("arch_edits", {
        "type": "object",
        "properties": {
            "edits": {"type": "array", "minItems": 1, "maxItems": 4, "items": {
                "type": "object",
                "properties": {"op": {"type": "string", "enum": list(EDIT_OPS)},
                               "path": {"type": "string", "enum": ["", *edit_paths(spec)]},
                               "value": value},
                "required": ["op", "path", "value"]}},
            "rationale": {"type": "string", "maxLength": 160},
        },
        "required": ["edits", "rationale"]})


def parse_open(text: str, spec):
    """(new spec, edits) from a JSON answer; StructuredError when invalid or not applicable."""
    from archlore.search.spaces.open_spec import apply_edits

    data = json_object(text)
    if isinstance(data, dict) and "edits" not in data and "op" in data:
        data = {"edits": [data]}  # a single bare edit
    try:
        answer = OpenEdits.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise StructuredError(f"the JSON does not match the edit schema at {where}: "
                              f"{first['msg']}") from e
    if not answer.edits:
        raise StructuredError("the answer lists no edits; give at least one edit")
    try:
        child = apply_edits(spec, answer.edits)
    except ValueError as e:
        raise StructuredError(str(e)) from e
    return child, answer.edits


def parent_spec(parent, constraints):
    """The parent's ArchSpec: ``ParentInfo.arch`` (JSON), else the ``# archlore-spec:`` header
    of its code when the code is still what that spec renders to (an LLM-edited child keeps a
    stale header); None otherwise."""
    from archlore.agent.codeparse import same_behaviour
    from archlore.search.spaces.open import OpenSpace
    from archlore.search.spaces.open_spec import ArchSpec

    if parent is None:
        return None
    if parent.arch:
        try:
            return ArchSpec.from_json(parent.arch)
        except (ValidationError, ValueError):
            pass
    spec = ArchSpec.from_code(parent.code or "")
    if spec is None:
        return None
    rendered = OpenSpace().render(spec, constraints)
    return spec if same_behaviour(rendered, parent.code) else None


def edits_json(edits: list[ArchEdit]) -> str:
    return json.dumps([e.model_dump() for e in edits])


# ---------------------------------------------------------------------------- NB201


def cell_schema() -> dict:
    from archlore.search.spaces.nb201 import OPS
    from archlore.search.swnas.messages import EDGE_LABELS

    return schema_format("cell_changes", {
        "type": "object",
        "properties": {
            "changes": {"type": "array", "minItems": 1, "maxItems": 6, "items": {
                "type": "object",
                "properties": {"edge": {"type": "string", "enum": list(EDGE_LABELS)},
                               "op": {"type": "string", "enum": list(OPS)}},
                "required": ["edge", "op"]}},
            "rationale": {"type": "string", "maxLength": 300},
        },
        "required": ["changes", "rationale"]})


def cell_table(arch: str) -> str:
    from archlore.search.spaces.nb201 import parse_arch
    from archlore.search.swnas.messages import EDGE_LABELS

    return ", ".join(f"{e}: {op}" for e, op in zip(EDGE_LABELS, parse_arch(arch), strict=True))


def parse_cell(text: str, parent_arch: str) -> tuple[str, list[CellChange]]:
    """(child arch, changes) from a JSON answer applied to ``parent_arch``."""
    from archlore.search.spaces.nb201 import OPS, format_arch, parse_arch
    from archlore.search.swnas.messages import EDGE_LABELS

    data = json_object(text)
    try:
        answer = CellEdits.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise StructuredError(f"the JSON does not match the cell schema at "
                              f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from e
    if not answer.changes:
        raise StructuredError("the answer lists no changes; give at least one edge change")
    cell = list(parse_arch(parent_arch))
    for c in answer.changes:
        edge = c.edge.replace(" ", "")
        if edge not in EDGE_LABELS:
            raise StructuredError(f"unknown edge {c.edge!r}; edges: {', '.join(EDGE_LABELS)}")
        if c.op not in OPS:
            raise StructuredError(f"unknown op {c.op!r}; ops: {', '.join(OPS)}")
        cell[EDGE_LABELS.index(edge)] = c.op
    return format_arch(cell), answer.changes


# ---------------------------------------------------------------------------- SWNAS


def advisor_schema(space: str = "nb201") -> dict:
    from archlore.search.swnas.messages import answer_schema

    schema = answer_schema(space)
    # ``kind`` has a default in the models, so pydantic leaves it optional; a grammar-constrained
    # server then lets a small model omit it, and the edit cannot be told apart
    for variant in schema.get("$defs", {}).values():
        if "kind" in variant.get("properties", {}):
            required = variant.setdefault("required", [])
            if "kind" not in required:
                required.insert(0, "kind")
    return schema_format("advisor_answer", schema)


_KINDS = {"nb201": '"mask_op" or "kind": "prefer_op"',
          "open": '"mask_block", "kind": "prefer_block" or "kind": "add_node"'}


def parse_advice(text: str, space: str = "nb201"):
    from archlore.search.swnas.messages import answer_model

    data = json_object(text)
    try:
        return answer_model(space).model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        if "discriminator" in first["msg"]:
            raise StructuredError(f'{where} has no "kind": every edit starts with "kind": '
                                  f"{_KINDS[space]}") from e
        raise StructuredError(f"the JSON does not match the advisor schema at "
                              f"{where}: {first['msg']}") from e


def canonical_arch(arch: str) -> str:
    from archlore.search.spaces.nb201 import canonical

    return canonical(arch)
