"""The one chat interface every LLM backend implements, plus usage metering and a budget cap.

``Model.chat(messages, temperature, max_tokens, response_format) -> ChatResponse``.
Backends implement ``_complete``; the base class checks the budget before each call and
adds the call's tokens (and cost, from a per-model price table) to ``Model.usage``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from archlore.search.protocol import MutatorExhausted, Usage
from pydantic import BaseModel, Field

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


class LLMError(RuntimeError):
    """A chat call failed for good (after retries); the caller records the message."""


class BudgetExceeded(LLMError, MutatorExhausted):
    """The configured token / money cap is spent; no new calls are made."""


class ChatResponse(BaseModel):
    text: str
    usage: Usage = Field(default_factory=Usage)  # this call only (calls == 1)
    model: str = ""
    latency_s: float = 0.0  # wall clock of the call, retries included
    finish_reason: str | None = None  # "stop", "length" (truncated), ...

    @property
    def latency(self) -> float:
        """Alias of ``latency_s`` (seconds)."""
        return self.latency_s


class Price(BaseModel):
    """US dollars per million tokens."""

    prompt: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


class Budget(BaseModel):
    """Caps on the total spend of one Model object. ``None`` = no cap."""

    max_tokens: int | None = None  # prompt + completion tokens, all calls together
    max_cost_usd: float | None = None

    def check(self, used: Usage) -> None:
        """Raise BudgetExceeded if ``used`` already reached a cap."""
        total = used.prompt_tokens + used.completion_tokens
        if self.max_tokens is not None and total >= self.max_tokens:
            raise BudgetExceeded(
                f"LLM token budget spent: {total} tokens used of max {self.max_tokens} "
                f"({used.calls} calls); no further calls are made")
        if self.max_cost_usd is not None and used.cost_usd >= self.max_cost_usd:
            raise BudgetExceeded(
                f"LLM money budget spent: ${used.cost_usd:.4f} used of max "
                f"${self.max_cost_usd:.4f} ({used.calls} calls); no further calls are made")


class Model(ABC):
    """A chat model (smolagents-style). Subclasses implement ``_complete``."""

    name: str = "model"  # backend name
    model_id: str = ""

    def __init__(self, budget: Budget | None = None, price: Price | None = None) -> None:
        self.budget = budget or Budget()
        self.price = price
        self.usage = Usage()

    def chat(self, messages: list[Message], temperature: float = 0.0,
             max_tokens: int | None = None,
             response_format: dict | None = None) -> ChatResponse:
        """Send ``messages``; return the answer text and this call's usage.

        Raises BudgetExceeded before calling when a cap is reached, LLMError on failure.
        """
        _validate_messages(messages)
        self.budget.check(self.usage)
        start = time.perf_counter()
        response = self._complete(messages, temperature=temperature, max_tokens=max_tokens,
                                  response_format=response_format)
        if not response.latency_s:
            response.latency_s = time.perf_counter() - start
        if self.price is not None and not response.usage.cost_usd:
            response.usage.cost_usd = self.price.cost(response.usage.prompt_tokens,
                                                      response.usage.completion_tokens)
        response.usage.calls = 1
        response.usage.max_prompt_tokens = response.usage.prompt_tokens
        response.usage.seconds = response.latency_s
        self.usage = self.usage + response.usage
        return response

    @abstractmethod
    def _complete(self, messages: list[Message], *, temperature: float,
                  max_tokens: int | None, response_format: dict | None) -> ChatResponse: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_id!r})"


def _validate_messages(messages: list[Message]) -> None:
    if not messages:
        raise ValueError("chat() needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i} must be a dict with 'role' and 'content', got {m!r}")
        if m["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"message {i} has unknown role {m['role']!r}")
