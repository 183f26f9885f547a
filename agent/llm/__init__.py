"""LLM backends behind one chat interface (see base.Model)."""

from archlore.agent.llm.base import Budget, BudgetExceeded, ChatResponse, LLMError, Model, Price
from archlore.agent.llm.registry import create_model, list_backends, register_backend

__all__ = ["Budget", "BudgetExceeded", "ChatResponse", "LLMError", "Model", "Price",
           "create_model", "list_backends", "register_backend"]
