"""LLM configuration from the environment (or keyword overrides from the CLI).

Env vars: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` (the standard openai ones),
``ARCHLORE_LLM_MODEL``, ``ARCHLORE_LLM_TIMEOUT``, ``ARCHLORE_LLM_MAX_RETRIES``,
``ARCHLORE_LLM_MAX_TOKENS`` (total budget), ``ARCHLORE_LLM_MAX_COST_USD``,
``ARCHLORE_LLM_CASSETTE``, ``ARCHLORE_LLM_LOCAL`` / ``ARCHLORE_LLM_STREAM`` /
``ARCHLORE_LLM_PARALLEL`` (local-server behaviour; auto-detected when unset).

Local servers (a loopback ``base_url``, or ``local=True``): a first token can take minutes on a
CPU (the prompt's prefill), so the defaults differ: ``timeout_s`` 1,800 s (remote: 120 s),
streamed answers (progress in tokens), a timed-out request is not retried when the server
still answers its health probe (a retry would queue the same prefill again), and one request
at a time unless the server reports more parallel slots (llama.cpp ``/props``).
"""

from __future__ import annotations

import re

from archlore.agent.llm.base import Budget, Price
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REMOTE_TIMEOUT_S = 120.0
LOCAL_TIMEOUT_S = 1800.0

# US dollars per million tokens; unknown models (local servers) cost nothing.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(prompt=2.5, completion=10.0),
    "gpt-4o-mini": Price(prompt=0.15, completion=0.6),
    "gpt-4.1": Price(prompt=2.0, completion=8.0),
    "gpt-4.1-mini": Price(prompt=0.4, completion=1.6),
    "gpt-4.1-nano": Price(prompt=0.1, completion=0.4),
}


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARCHLORE_LLM_", extra="ignore",
                                      populate_by_name=True)

    base_url: str = Field("https://api.openai.com/v1",
                          validation_alias=AliasChoices("base_url", "OPENAI_BASE_URL"))
    api_key: str = Field("", validation_alias=AliasChoices("api_key", "OPENAI_API_KEY"))
    model: str = Field("gpt-4o-mini",
                       validation_alias=AliasChoices("model", "ARCHLORE_LLM_MODEL"))
    timeout_s: float | None = Field(None, validation_alias=AliasChoices(
        "timeout_s", "ARCHLORE_LLM_TIMEOUT"))  # None: 120 s, or 1,800 s for a local server
    connect_timeout_s: float = 10.0
    local: bool | None = Field(None, validation_alias=AliasChoices("local", "ARCHLORE_LLM_LOCAL"))
    stream: bool | None = Field(None, validation_alias=AliasChoices("stream",
                                                                    "ARCHLORE_LLM_STREAM"))
    max_parallel: int | None = Field(None, ge=1, validation_alias=AliasChoices(
        "max_parallel", "ARCHLORE_LLM_PARALLEL"))  # None: local -> server's slots or 1
    max_retries: int = Field(4, validation_alias=AliasChoices("max_retries",
                                                              "ARCHLORE_LLM_MAX_RETRIES"))
    backoff_initial_s: float = 1.0  # first retry delay; doubles each retry
    backoff_max_s: float = 30.0
    max_total_tokens: int | None = Field(
        None, validation_alias=AliasChoices("max_total_tokens", "ARCHLORE_LLM_MAX_TOKENS"))
    max_cost_usd: float | None = Field(
        None, validation_alias=AliasChoices("max_cost_usd", "ARCHLORE_LLM_MAX_COST_USD"))
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    cassette: str | None = Field(None, validation_alias=AliasChoices("cassette",
                                                                     "ARCHLORE_LLM_CASSETTE"))

    def is_local(self) -> bool:
        if self.local is not None:
            return self.local
        from urllib.parse import urlparse

        host = (urlparse(self.base_url).hostname or "").lower()
        return host in ("127.0.0.1", "localhost", "::1", "0.0.0.0") or host.startswith("127.")

    def effective_timeout(self) -> float:
        if self.timeout_s is not None:
            return self.timeout_s
        return LOCAL_TIMEOUT_S if self.is_local() else REMOTE_TIMEOUT_S

    def effective_stream(self) -> bool:
        return self.stream if self.stream is not None else self.is_local()

    def budget(self) -> Budget:
        return Budget(max_tokens=self.max_total_tokens, max_cost_usd=self.max_cost_usd)

    def price(self) -> Price | None:
        """The model's price; a dated snapshot id ("gpt-4o-mini-2024-07-18") costs what its
        base id costs, so a money cap still holds for it. Unknown models: None (free)."""
        if self.model in self.prices:
            return self.prices[self.model]
        bases = [k for k in self.prices
                 if re.fullmatch(re.escape(k) + r"-\d[\d-]*", self.model)]
        return self.prices[max(bases, key=len)] if bases else None
