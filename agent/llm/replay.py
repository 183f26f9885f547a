"""Record / replay: every request and response in a cassette (JSONL), replayable offline.

A cassette line: ``{"key": sha256(request), "request": {...}, "response": ChatResponse}``,
or ``"error": message`` instead of ``"response"`` for a call that failed (replayed as LLMError),
or ``"budget_exceeded": message`` where the recorded run hit its cap (replayed as BudgetExceeded).
The key hashes the canonical JSON of (messages, temperature, max_tokens, response_format,
model id), so the same run asks the same questions and gets the same answers back: a run
replayed from a cassette reproduces the same candidates with no server. Repeated identical
requests are answered in recorded order.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from archlore.agent.llm.base import BudgetExceeded, ChatResponse, LLMError, Message, Model


class CassetteMiss(LLMError):
    """The replayed run asked something the cassette does not hold."""


def request_key(messages: list[Message], temperature: float, max_tokens: int | None,
                response_format: dict | None) -> str:
    """sha256 (hex) of the canonical request; the model id is not part of it, so a
    cassette recorded against one server name replays under any backend name."""
    canonical = json.dumps({"messages": messages, "temperature": temperature,
                            "max_tokens": max_tokens, "response_format": response_format},
                           sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class RecordingModel(Model):
    """Wraps any Model; appends each request/response to ``cassette`` (JSONL)."""

    name = "record"

    def __init__(self, inner: Model, cassette: str | Path) -> None:
        super().__init__(budget=None)  # the inner model enforces its own budget
        self.inner = inner
        self.model_id = inner.model_id
        self.path = Path(cassette)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _complete(self, messages: list[Message], *, temperature: float,
                  max_tokens: int | None, response_format: dict | None) -> ChatResponse:
        line = {"key": request_key(messages, temperature, max_tokens, response_format),
                "request": {"messages": messages, "temperature": temperature,
                            "max_tokens": max_tokens, "response_format": response_format}}
        try:
            response = self.inner.chat(messages, temperature=temperature,
                                       max_tokens=max_tokens, response_format=response_format)
        except LLMError as e:
            # A failed call is part of the run: replay must fail it too, or a later identical
            # request's answer would be handed to this one and the replay would diverge. A
            # spent budget (no call made) is recorded as well: the replayed run stops there.
            line["budget_exceeded" if isinstance(e, BudgetExceeded) else "error"] = str(e)
            self._append(line)
            raise
        line["response"] = response.model_dump(mode="json")
        self._append(line)
        return response.model_copy(deep=True)

    def _append(self, line: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


class ReplayModel(Model):
    """Answers from a cassette; no server. A request not in the cassette raises CassetteMiss."""

    name = "replay"

    def __init__(self, cassette: str | Path) -> None:
        super().__init__(budget=None)
        self.path = Path(cassette)
        if not self.path.is_file():
            raise LLMError(f"replay cassette not found: {self.path}")
        # per request key, in recorded order: the answer, or the failed call's error to raise
        self._answers: dict[str, list[ChatResponse | LLMError]] = defaultdict(list)
        for n, raw in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                if "response" in line:
                    answer = ChatResponse.model_validate(line["response"])
                elif "budget_exceeded" in line:
                    answer = BudgetExceeded(str(line["budget_exceeded"]))
                else:
                    answer = LLMError(str(line["error"]))
                self._answers[line["key"]].append(answer)
            except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
                raise LLMError(f"cassette {self.path} line {n} is not a recorded call: {e}") from e
        first = next((a for q in self._answers.values() for a in q
                      if isinstance(a, ChatResponse)), None)
        self.model_id = first.model if first else "replay"

    def _complete(self, messages: list[Message], *, temperature: float,
                  max_tokens: int | None, response_format: dict | None) -> ChatResponse:
        key = request_key(messages, temperature, max_tokens, response_format)
        queue = self._answers.get(key)
        if not queue:
            last = str(messages[-1].get("content", ""))[:120].replace("\n", " ")
            raise CassetteMiss(
                f"replay cassette {self.path} has no (more) recorded answer for request "
                f"{key[:12]} (last message starts: {last!r}); the run diverged from the "
                f"recording or the cassette is from another configuration")
        answer = queue.pop(0)
        if isinstance(answer, LLMError):
            raise type(answer)(str(answer))  # the recorded message: results match the recording
        return answer.model_copy(deep=True)
