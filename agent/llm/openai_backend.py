"""Backend for any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio).

Retries are ours, not the openai client's (it runs with ``max_retries=0``), so each retry is
counted and the backoff is configurable: 429, 408/409, 5xx, connection errors and timeouts are
retried with exponential backoff (``backoff_initial_s * 2**attempt``, capped), and a server's
``Retry-After`` / ``retry-after-ms`` header replaces the computed delay when present.
"""

from __future__ import annotations

import email.utils
import logging
import time

from archlore.agent.llm.base import ChatResponse, LLMError, Message, Model
from archlore.agent.llm.settings import LLMSettings
from archlore.search.protocol import Usage

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429}
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer than this is treated as a failure


class OpenAIModel(Model):
    name = "openai"

    def __init__(self, settings: LLMSettings | None = None, **overrides) -> None:
        self.settings = settings or LLMSettings(**overrides)
        s = self.settings
        super().__init__(budget=s.budget(), price=s.price())
        self.model_id = s.model
        self.retries_done = 0  # total retries over the object's life, for reports
        import openai  # lazy: only this backend needs it

        self._openai = openai
        self._client = openai.OpenAI(base_url=s.base_url, api_key=s.api_key or "not-needed",
                                     timeout=s.timeout_s, max_retries=0)

    def _complete(self, messages: list[Message], *, temperature: float,
                  max_tokens: int | None, response_format: dict | None) -> ChatResponse:
        s, openai = self.settings, self._openai
        kwargs: dict = {"model": s.model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        start = time.perf_counter()
        last_error = ""
        for attempt in range(s.max_retries + 1):
            delay: float | None = None
            try:
                completion = self._client.chat.completions.create(**kwargs)
                return self._to_response(completion, time.perf_counter() - start)
            except openai.APIStatusError as e:
                code = e.status_code
                last_error = f"HTTP {code} from {s.base_url}: {_short(e.message)}"
                if code not in RETRY_STATUS and code < 500:
                    raise LLMError(f"LLM request rejected: {last_error}") from e
                delay = _retry_after(e.response.headers)
                if delay is not None and delay > MAX_RETRY_AFTER_S:
                    raise LLMError(f"{last_error}; server asks to wait {delay:.0f}s "
                                   f"(> {MAX_RETRY_AFTER_S:.0f}s), giving up") from e
            except openai.APITimeoutError:
                last_error = f"timed out after {s.timeout_s}s waiting for {s.base_url}"
            except openai.APIConnectionError as e:
                last_error = f"cannot connect to {s.base_url}: {_short(str(e.__cause__ or e))}"
            except openai.APIResponseValidationError as e:
                raise LLMError(f"malformed response from {s.base_url}: {_short(str(e))}") from e
            except (ValueError, TypeError, KeyError) as e:  # undecodable JSON body
                raise LLMError(f"malformed response from {s.base_url}: {_short(str(e))}") from e
            if attempt == s.max_retries:
                break
            if delay is None:
                delay = min(s.backoff_initial_s * 2**attempt, s.backoff_max_s)
            log.warning("LLM call failed (%s); retry %d/%d in %.2fs", last_error, attempt + 1,
                        s.max_retries, delay)
            self.retries_done += 1
            time.sleep(delay)
        raise LLMError(f"LLM call failed after {s.max_retries + 1} attempts: {last_error}")

    def _to_response(self, completion, latency: float) -> ChatResponse:
        base = self.settings.base_url
        choices = getattr(completion, "choices", None)
        if not choices:
            raise LLMError(f"malformed response from {base}: no choices in {_short(repr(completion))}")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str):
            raise LLMError(f"malformed response from {base}: choice 0 has no text content")
        usage = getattr(completion, "usage", None)
        return ChatResponse(
            text=text,
            usage=Usage(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                        completion_tokens=getattr(usage, "completion_tokens", 0) or 0),
            model=getattr(completion, "model", "") or self.settings.model,
            latency_s=latency,
            finish_reason=getattr(choices[0], "finish_reason", None),
        )


def _retry_after(headers) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``Retry-After`` secs or date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
