"""What the LLM mutator's prompts are made of: answer markers and caps, the trimming order, the
LLMatic prompt lists, and the blocks (task, constraints, metrics, history, idea) every
template fills."""

from __future__ import annotations

import re

from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Idea
from archlore.search.protocol import Constraints, MutationRequest, ParentInfo

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
