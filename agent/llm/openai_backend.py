"""Backend for any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio).

Retries are ours, not the openai client's (it runs with ``max_retries=0``), so each retry is
counted and the backoff is configurable: 429, 408/409, 5xx, connection errors and timeouts are
retried with exponential backoff (``backoff_initial_s * 2**attempt``, capped), and a server's
``Retry-After`` / ``retry-after-ms`` header replaces the computed delay when present.

Local servers (see ``LLMSettings``): streamed answers, with progress (tokens so far) reported
to :data:`PROGRESS_HOOKS` and logged every ``PROGRESS_EVERY_S``; a long first-token wait is not
a dead server (the read timeout is the whole ``timeout_s``; a timed-out request whose server
still answers a health probe is reported, not retried); one request at a time per server
unless it reports more slots. ``context_window()`` reads the server's context size
(llama.cpp ``/props``, vLLM ``max_model_len``, llama.cpp ``meta.n_ctx``) for prompt budgets.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from archlore.agent.llm.base import ChatResponse, LLMError, Message, Model
from archlore.agent.llm.settings import LLMSettings
from archlore.search.protocol import Usage

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429}
PROGRESS_EVERY_S = 15.0


@dataclass
class Progress:
    """A call in flight (streamed): what a progress display shows."""

    base_url: str
    model: str
    elapsed_s: float
    tokens: int  # completion pieces received so far (~tokens)
    first_token_s: float | None  # None: still waiting for the first token (prefill)
    done: bool = False


PROGRESS_HOOKS: list[Callable[[Progress], None]] = []  # e.g. a CLI status line
_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def _server_slot(key: str, n: int) -> threading.BoundedSemaphore:
    with _SLOTS_LOCK:
        if key not in _SLOTS:
            _SLOTS[key] = threading.BoundedSemaphore(n)
        return _SLOTS[key]
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
        import httpx

        self.timeout_s = s.effective_timeout()
        self.stream = s.effective_stream()
        self.local = s.is_local()
        self._client = openai.OpenAI(
            base_url=s.base_url, api_key=s.api_key or "not-needed", max_retries=0,
            timeout=httpx.Timeout(self.timeout_s, connect=min(s.connect_timeout_s,
                                                              self.timeout_s)))
        self._info: dict | None = None
        self._slot: threading.BoundedSemaphore | None = None

    # ------------------------------------------------------------------ server probes

    def server_info(self) -> dict:
        """What the server says about itself (best effort, cached): ``context`` (tokens),
        ``slots`` (parallel requests). Empty when it says nothing."""
        if self._info is not None:
            return self._info
        import httpx

        info: dict = {}
        root = self.settings.base_url.rstrip("/")
        root = root[:-3] if root.endswith("/v1") else root
        headers = {"Authorization": f"Bearer {self.settings.api_key}"} \
            if self.settings.api_key else {}
        try:
            with httpx.Client(timeout=5.0, headers=headers) as client:
                if self.local:
                    r = client.get(f"{root}/props")
                    if r.status_code == 200:
                        d = r.json()
                        n_ctx = (d.get("default_generation_settings") or {}).get("n_ctx")
                        if n_ctx:
                            info["context"] = int(n_ctx)
                        if d.get("total_slots"):
                            info["slots"] = int(d["total_slots"])
                if "context" not in info:
                    r = client.get(f"{self.settings.base_url.rstrip('/')}/models")
                    if r.status_code == 200:
                        for m in r.json().get("data", []):
                            if m.get("id") not in (self.settings.model, None) and \
                                    len(r.json().get("data", [])) > 1:
                                continue
                            n = m.get("max_model_len") or (m.get("meta") or {}).get("n_ctx") \
                                or m.get("context_length")
                            if n:
                                info["context"] = int(n)
                                break
        except (httpx.HTTPError, ValueError, TypeError):
            pass
        self._info = info
        return info

    def context_window(self) -> int | None:
        return self.server_info().get("context")

    def _alive(self) -> bool:
        """Does the server still answer (a slow prefill, not a dead server)?"""
        import httpx

        root = self.settings.base_url.rstrip("/")
        try:
            with httpx.Client(timeout=5.0) as client:
                for url in (f"{root[:-3] if root.endswith('/v1') else root}/health",
                            f"{root}/models"):
                    if client.get(url).status_code == 200:
                        return True
        except httpx.HTTPError:
            return False
        return False

    def slot(self) -> threading.BoundedSemaphore | None:
        """The per-server request slot (local servers: their reported slots, else 1)."""
        if not self.local and self.settings.max_parallel is None:
            return None
        if self._slot is None:
            n = self.settings.max_parallel or self.server_info().get("slots") or 1
            self._slot = _server_slot(self.settings.base_url, int(n))
        return self._slot

    def _complete(self, messages: list[Message], *, temperature: float,
                  max_tokens: int | None, response_format: dict | None) -> ChatResponse:
        s = self.settings
        kwargs: dict = {"model": s.model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if self.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        slot = self.slot()
        if slot is not None:
            slot.acquire()
        try:
            return self._attempts(kwargs)
        finally:
            if slot is not None:
                slot.release()

    def _attempts(self, kwargs: dict) -> ChatResponse:
        s, openai = self.settings, self._openai
        start = time.perf_counter()
        last_error = ""
        for attempt in range(s.max_retries + 1):
            delay: float | None = None
            try:
                if self.stream:
                    return self._streamed(kwargs, start)
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
                last_error = f"timed out after {self.timeout_s:g}s waiting for {s.base_url}"
                if self.local and self._alive():
                    # alive but slow (a long prefill on a CPU): a retry would queue the same work
                    raise LLMError(
                        f"LLM call {last_error}; the server is alive but slower than that "
                        f"(raise ARCHLORE_LLM_TIMEOUT, shorten the prompt with "
                        f"--context-tokens, or use a smaller model)") from None
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

    def _streamed(self, kwargs: dict, start: float) -> ChatResponse:
        s = self.settings
        pieces: list[str] = []
        finish = model = None
        usage = None
        first: float | None = None
        last_report = time.perf_counter()
        stream = self._client.chat.completions.create(**kwargs)
        try:
            for chunk in stream:
                model = getattr(chunk, "model", None) or model
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in getattr(chunk, "choices", None) or []:
                    text = getattr(getattr(choice, "delta", None), "content", None)
                    if text:
                        if first is None:
                            first = time.perf_counter() - start
                        pieces.append(text)
                    if getattr(choice, "finish_reason", None):
                        finish = choice.finish_reason
                now = time.perf_counter()
                if now - last_report >= PROGRESS_EVERY_S:
                    last_report = now
                    self._progress(now - start, len(pieces), first)
                if now - start > self.timeout_s:
                    raise LLMError(f"LLM call exceeded {self.timeout_s:g}s while streaming from "
                                   f"{s.base_url} ({len(pieces)} pieces so far)")
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
        if finish is None and not pieces:
            raise LLMError(f"malformed response from {s.base_url}: the stream held no answer")
        self._progress(time.perf_counter() - start, len(pieces), first, done=True)
        text = "".join(pieces)
        return ChatResponse(
            text=text,
            usage=Usage(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                        completion_tokens=getattr(usage, "completion_tokens", 0) or len(pieces)),
            model=model or s.model, latency_s=time.perf_counter() - start,
            finish_reason=finish)

    def _progress(self, elapsed: float, tokens: int, first: float | None,
                  done: bool = False) -> None:
        p = Progress(self.settings.base_url, self.settings.model, elapsed, tokens, first, done)
        if not done:
            log.info("LLM call in flight: %s, %d tokens so far, %.0fs%s", p.model, tokens,
                     elapsed, "" if first is not None else " (prompt prefill, no token yet)")
        for hook in list(PROGRESS_HOOKS):
            try:
                hook(p)
            except Exception:  # a display must never break a call
                log.debug("progress hook failed", exc_info=True)

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
