"""Build prompts within a token budget.

A prompt is a list of ranked :class:`Part`\\ s (rank 0 = must keep: the task, the goal, the
parent; then the idea card, paper evidence, lineage feedback). :func:`fit` keeps the parts in
their written order and, while the estimate exceeds the budget, shrinks the lowest-ranked part
first: to its ``short`` form (a summary) when it has one, else by cutting lines from its end,
else drops it. Rank-0 parts are never cut (a prompt that cannot fit without them is sent as is,
and the caller sizes the answer cap from what is left).

Token counts are estimates (:func:`estimate_tokens`: ~3.2 characters per token for code and
English with BPE tokenizers, rounded up); the server's own count comes back in ``Usage``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHARS_PER_TOKEN = 3.2
MESSAGE_OVERHEAD = 6  # role markers and separators per chat message (chat templates)


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN + 0.999) if text else 0


def messages_tokens(messages: list[dict]) -> int:
    return sum(estimate_tokens(str(m.get("content", ""))) + MESSAGE_OVERHEAD for m in messages)


@dataclass
class Part:
    name: str
    text: str
    rank: int = 0  # 0: never cut; higher ranks are cut first
    short: str | None = None  # summary used before cutting lines
    cut_lines: bool = True  # may lose lines from its end (feedback lists, paper text)
    note: list[str] = field(default_factory=list)


@dataclass
class Fitted:
    text: str
    tokens_before: int
    tokens_after: int
    trimmed: list[str]  # "name (summarised)", "name (cut to N lines)", "name (dropped)"


def fit(parts: list[Part], budget: int | None) -> Fitted:
    """Join ``parts`` (non-empty ones, blank-line separated) within ``budget`` tokens."""
    parts = [Part(p.name, p.text.strip("\n"), p.rank, p.short, p.cut_lines) for p in parts
             if p.text and p.text.strip()]

    def total() -> int:
        return estimate_tokens("\n\n".join(p.text for p in parts if p.text))

    before = total()
    trimmed: list[str] = []
    if budget is None or before <= budget:
        return Fitted("\n\n".join(p.text for p in parts) + "\n", before, before, trimmed)
    for p in sorted((p for p in parts if p.rank > 0), key=lambda p: (-p.rank, -len(p.text))):
        if total() <= budget:
            break
        if p.short is not None and len(p.short) < len(p.text):
            p.text = p.short.strip("\n")
            trimmed.append(f"{p.name} (summarised)")
            if total() <= budget:
                break
        if p.cut_lines:
            lines = p.text.splitlines()
            keep = len(lines)
            while keep > 1 and total() > budget:
                keep -= 1
                p.text = "\n".join(lines[:keep])
            if keep < len(lines):
                trimmed.append(f"{p.name} (cut to {keep} of {len(lines)} lines)")
            if total() <= budget:
                break
        p.text = ""
        trimmed.append(f"{p.name} (dropped)")
    text = "\n\n".join(p.text for p in parts if p.text) + "\n"
    return Fitted(text, before, estimate_tokens(text), trimmed)


def answer_cap(expected: int, context: int | None, prompt_tokens: int,
               hard_cap: int | None) -> int:
    """max_tokens for an answer: the expected size, within what the context leaves after the
    prompt and within the configured hard cap (at least 64)."""
    cap = expected
    if context is not None:
        cap = min(cap, max(64, context - prompt_tokens - 16))
    if hard_cap is not None:
        cap = min(cap, hard_cap)
    return max(64, cap)


def fit_values(render, values: dict, ranked: list[tuple[str, str | None]],
               budget: int | None) -> Fitted:
    """Render a template (``render(values) -> text``) within ``budget`` tokens by shrinking
    the optional ``values`` named in ``ranked`` (cut first to last): ``short="summary"``
    first keeps only a value's first two lines; then lines are cut from its end; then it is
    dropped. Values not named are never cut."""
    values = dict(values)
    text = render(values)
    before = estimate_tokens(text)
    trimmed: list[str] = []
    if budget is None or before <= budget:
        return Fitted(text, before, before, trimmed)
    for key, short in ranked:
        if estimate_tokens(text) <= budget:
            break
        value = str(values.get(key) or "")
        if not value.strip() or render({**values, key: ""}) == text:
            continue  # empty, or not a part of this template
        lines = value.splitlines()
        if short == "summary" and len(lines) > 2:
            values[key] = "\n".join(lines[:2])
            text = render(values)
            trimmed.append(f"{key} (summarised)")
            if estimate_tokens(text) <= budget:
                break
            lines = lines[:2]
        keep = len(lines)
        while keep > 1 and estimate_tokens(text) > budget:
            keep -= 1
            values[key] = "\n".join(lines[:keep])
            text = render(values)
        if estimate_tokens(text) <= budget:
            trimmed.append(f"{key} (cut to {keep} of {len(value.splitlines())} lines)")
            break
        values[key] = ""
        text = render(values)
        trimmed.append(f"{key} (dropped)")
    return Fitted(text, before, estimate_tokens(text), trimmed)
