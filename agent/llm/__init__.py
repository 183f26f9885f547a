"""LLM backends behind one chat interface (see base.Model)."""

from agent.llm.base import Budget, BudgetExceeded, ChatResponse, LLMError, Model, Price
from agent.llm.registry import create_model, list_backends, register_backend

__all__ = ["Budget", "BudgetExceeded", "ChatResponse", "LLMError", "Model", "Price",
           "create_model", "list_backends", "register_backend"]
