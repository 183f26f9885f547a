"""A small OpenAI-compatible HTTP server with scripted answers, on 127.0.0.1.

Used by the tests (the openai backend is exercised over real HTTP) and by
``benchmarks/bench_llm.py`` when no endpoint is configured. Not a model: it replays the
answers it is given, in order, or asks a ``responder`` callable.

    with ScriptedServer(["hello", Reply(status=429, headers={"Retry-After": "0.2"}), "ok"]) as srv:
        OpenAIModel(base_url=srv.base_url, model="m").chat([...])
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted HTTP answer. ``text`` becomes the assistant message; ``body`` (raw)
    overrides the whole JSON body (for malformed-body tests)."""

    text: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    delay_s: float = 0.0  # sleep before answering (timeout tests)
    prompt_tokens: int | None = None  # default: words in the prompt
    completion_tokens: int | None = None  # default: words in the answer
    finish_reason: str = "stop"
    chunk_delay_s: float = 0.0  # streamed answers: sleep between chunks (after delay_s)


Responder = Callable[[dict], "Reply | str"]


@dataclass
class Received:
    at: float  # time.monotonic() when the request arrived
    path: str
    body: dict


class ScriptedServer:
    def __init__(self, script: list[Reply | str] | None = None,
                 responder: Responder | None = None, model: str = "scripted") -> None:
        self.script: list[Reply | str] = list(script or [])
        self.responder = responder
        self.model = model
        self.requests: list[Received] = []
        self.context: int | None = None  # reported as /v1/models max_model_len (vLLM-style)
        self.props: dict | None = None  # llama.cpp-style /props (n_ctx, total_slots)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            item = self.script.pop(0) if self.script else None
        if item is None and self.responder is not None:
            item = self.responder(body)
        if item is None:
            return Reply(status=500, body=json.dumps(
                {"error": {"message": "scripted server: script exhausted", "type": "server"}}))
        return Reply(text=item) if isinstance(item, str) else item

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # /v1/models (+ llama.cpp's /props, /health) for probes
                if self.path.rstrip("/").endswith("/props") and server.props is not None:
                    self._send(200, {}, json.dumps(server.props))
                    return
                if self.path.rstrip("/").endswith("/health"):
                    self._send(200, {}, json.dumps({"status": "ok"}))
                    return
                model = {"id": server.model, "object": "model", "owned_by": "archlore"}
                if server.context is not None:
                    model["max_model_len"] = server.context
                self._send(200, {}, json.dumps({"object": "list", "data": [model]}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {}, json.dumps({"error": {"message": "bad JSON"}}))
                    return
                server.requests.append(Received(time.monotonic(), self.path, body))
                reply = server._next_reply(body)
                if body.get("stream") and reply.status == 200 and reply.body is None:
                    self._stream(reply, body)
                    return
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.body if reply.body is not None else json.dumps(
                    _completion(reply, body, server.model) if reply.status == 200 else
                    {"error": {"message": reply.text or f"scripted HTTP {reply.status}",
                               "type": "scripted"}})
                self._send(reply.status, reply.headers, payload)

            def _stream(self, reply: Reply, body: dict) -> None:
                """Server-sent events as OpenAI streams them: role, text pieces, the finish
                reason, a usage chunk when asked (stream_options.include_usage), [DONE]."""
                full = _completion(reply, body, server.model)
                base = {k: full[k] for k in ("id", "created", "model")}
                base["object"] = "chat.completion.chunk"
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.flush()
                    if reply.delay_s:  # a long prefill: nothing on the wire until the 1st token
                        time.sleep(reply.delay_s)
                    pieces = re.findall(r"\s*\S+\s*", reply.text) or [reply.text]
                    for i, piece in enumerate(pieces):
                        delta = {"content": piece} if i else {"role": "assistant", "content": piece}
                        self._event({**base, "choices": [{"index": 0, "delta": delta,
                                                          "finish_reason": None}]})
                        if reply.chunk_delay_s:
                            time.sleep(reply.chunk_delay_s)
                    self._event({**base, "choices": [{"index": 0, "delta": {},
                                                      "finish_reason": reply.finish_reason}]})
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self._event({**base, "choices": [], "usage": full["usage"]})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _event(self, data: dict) -> None:
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                self.wfile.flush()

            def _send(self, status: int, headers: dict[str, str], payload: str) -> None:
                data = payload.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                    pass

        return Handler


def _completion(reply: Reply, request: dict, model: str) -> dict:
    prompt_words = sum(len(str(m.get("content", "")).split())
                       for m in request.get("messages", []))
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_words
    completion_tokens = (reply.completion_tokens if reply.completion_tokens is not None
                         else len(reply.text.split()))
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", model),
        "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                     "message": {"role": "assistant", "content": reply.text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
