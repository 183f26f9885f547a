"""Local servers as first-class backends, over real HTTP: streamed answers with progress,
long first-token waits, no retry of a timed-out request on a live server, one request at a
time unless the server reports more slots, and ``archlore llm serve`` without the extra."""

from __future__ import annotations

import threading

import pytest
from archlore.agent.llm import LLMError
from archlore.agent.llm import openai_backend as ob
from archlore.agent.llm.local_server import Reply
from archlore.agent.llm.settings import LLMSettings

HI = [{"role": "user", "content": "hi"}]


def test_loopback_is_local_with_long_timeout_and_streaming():
    s = LLMSettings(base_url="http://127.0.0.1:8080/v1")
    assert s.is_local() and s.effective_timeout() == 1800 and s.effective_stream()
    r = LLMSettings(base_url="https://api.openai.com/v1")
    assert not r.is_local() and r.effective_timeout() == 120 and not r.effective_stream()
    assert LLMSettings(base_url="http://127.0.0.1:1/v1", timeout_s=5).effective_timeout() == 5


def test_streamed_answer_with_usage_and_progress(server, make_model, monkeypatch):
    monkeypatch.setattr(ob, "PROGRESS_EVERY_S", 0.0)
    seen: list[ob.Progress] = []
    monkeypatch.setattr(ob, "PROGRESS_HOOKS", [seen.append])
    server.script = [Reply("one two three four", delay_s=0.3, chunk_delay_s=0.02,
                           prompt_tokens=11, completion_tokens=4)]
    r = make_model().chat(HI, max_tokens=20)
    assert r.text == "one two three four" and r.finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 4)
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert seen and seen[-1].done and seen[-1].tokens == 4
    assert seen[-1].first_token_s is not None and seen[-1].first_token_s >= 0.25


def test_truncated_stream_reports_length(server, make_model):
    server.script = [Reply("a b c", finish_reason="length")]
    assert make_model().chat(HI).finish_reason == "length"


def test_slow_prefill_within_the_timeout_is_not_a_dead_server(server, make_model):
    server.script = [Reply("late but fine", delay_s=1.0)]
    assert make_model(timeout_s=3.0).chat(HI).text == "late but fine"


def test_timeout_on_a_live_local_server_is_reported_not_retried(server, make_model):
    server.script = [Reply("too late", delay_s=1.5), "never asked"]
    with pytest.raises(LLMError, match="alive but slower"):
        make_model(timeout_s=0.4, stream=False).chat(HI)
    assert len(server.requests) == 1


def test_one_request_at_a_time_to_a_one_slot_server(server, make_model):
    server.props = {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1}
    server.script = [Reply("a", delay_s=0.4), Reply("b", delay_s=0.4)]
    server.base_url  # noqa: B018
    models = [make_model(), make_model()]
    ends: list[float] = []
    import time

    def call(m):
        m.chat(HI)
        ends.append(time.monotonic())

    threads = [threading.Thread(target=call, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posts = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(posts) == 2
    # the second request reached the server only after the first was answered
    assert posts[1].at >= min(ends) - 0.05


def test_parallel_slots_reported_by_the_server_allow_overlap(server, make_model):
    server.props = {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 2}
    m = make_model(max_parallel=None)
    assert m.server_info() == {"context": 4096, "slots": 2}


def test_serve_without_the_extra_says_how_to_install(tmp_path):
    from archlore.agent.local_llm import LocalServerError, ServeOptions, build_params

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        with pytest.raises(LocalServerError, match=r"archlore\[local\]"):
            build_params(ServeOptions(model=gguf))
    with pytest.raises(LocalServerError):
        build_params(ServeOptions(model=tmp_path / "missing.gguf"))
