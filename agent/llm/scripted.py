"""A backend that answers from a list (tests and demos). Not a model."""

from __future__ import annotations

from collections.abc import Callable

from archlore.agent.llm.base import Budget, ChatResponse, LLMError, Message, Model
from archlore.search.protocol import Usage


class ScriptedModel(Model):
    """Answers ``answers`` in order, then ``responder(messages)`` if given, else LLMError.

    Token counts are whitespace word counts (so budgets can be exercised offline).
    """

    name = "scripted"

    def __init__(self, answers: list[str] | None = None,
                 responder: Callable[[list[Message]], str] | None = None,
                 model: str = "scripted", budget: Budget | None = None) -> None:
        super().__init__(budget=budget)
        self.answers = list(answers or [])
        self.responder = responder
        self.model_id = model
        self.seen: list[list[Message]] = []

    def _complete(self, messages: list[Message], *, temperature: float,
                  max_tokens: int | None, response_format: dict | None) -> ChatResponse:
        self.seen.append(messages)
        if self.answers:
            text = self.answers.pop(0)
        elif self.responder is not None:
            text = self.responder(messages)
        else:
            raise LLMError(f"scripted model exhausted after {len(self.seen) - 1} answers")
        prompt = sum(len(str(m["content"]).split()) for m in messages)
        return ChatResponse(text=text, model=self.model_id,
                            usage=Usage(prompt_tokens=prompt, completion_tokens=len(text.split())))
