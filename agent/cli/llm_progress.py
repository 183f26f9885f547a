"""Show the LLM call in flight: a slow local server can take minutes before its first token, and a
search that prints nothing for that long looks dead. The OpenAI backend reports streamed calls to
``PROGRESS_HOOKS`` (every ``PROGRESS_EVERY_S`` seconds); this renders them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from archlore.agent.llm.openai_backend import PROGRESS_HOOKS, Progress


def describe(p: Progress) -> str:
    """One line: "qwen: 42 tokens, 63 s" or "qwen: prompt prefill, 63 s (no token yet)"."""
    if p.done:
        return f"{p.model}: answered, {p.tokens} tokens in {p.elapsed_s:.0f} s"
    if p.first_token_s is None:
        return f"{p.model}: prompt prefill, {p.elapsed_s:.0f} s (no token yet)"
    return f"{p.model}: {p.tokens} tokens so far, {p.elapsed_s:.0f} s"


class LLMActivity:
    """The latest call's state, for a live view (thread-safe: calls come from worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.line = "-"

    def __call__(self, p: Progress) -> None:
        with self._lock:
            self.line = describe(p)


def printer(console) -> Callable[[Progress], None]:
    """A hook printing one line per report of a call still in flight (plain output, no live
    view): every 15 s while a call streams, so a slow server is not taken for a dead one."""
    from rich.markup import escape

    def show(p: Progress) -> None:
        if not p.done:
            console.print(escape(f"LLM call in flight: {describe(p)}"))

    return show


@contextmanager
def llm_progress(sink: Callable[[Progress], None]) -> Iterator[None]:
    """Register ``sink`` as a progress hook for the duration of a command."""
    PROGRESS_HOOKS.append(sink)
    try:
        yield
    finally:
        if sink in PROGRESS_HOOKS:
            PROGRESS_HOOKS.remove(sink)
