"""LLM configuration from the environment (or keyword overrides from the CLI).

Env vars: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` (the standard openai ones),
``ARCHLORE_LLM_MODEL``, ``ARCHLORE_LLM_TIMEOUT``, ``ARCHLORE_LLM_MAX_RETRIES``,
``ARCHLORE_LLM_MAX_TOKENS`` (total budget), ``ARCHLORE_LLM_MAX_COST_USD``,
``ARCHLORE_LLM_CASSETTE``.
"""

from __future__ import annotations

import re

from archlore.agent.llm.base import Budget, Price
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    timeout_s: float = Field(120.0, validation_alias=AliasChoices("timeout_s",
                                                                  "ARCHLORE_LLM_TIMEOUT"))
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
