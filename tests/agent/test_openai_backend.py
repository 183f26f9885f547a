"""The openai backend over real HTTP against a scripted OpenAI-compatible server."""

from __future__ import annotations

import socket
import time

import pytest
from archlore.agent.llm import BudgetExceeded, LLMError, create_model, list_backends
from archlore.agent.llm.base import Price
from archlore.agent.llm.local_server import Reply

HI = [{"role": "user", "content": "hello model"}]


def test_chat_returns_text_usage_and_sends_request(server, make_model):
    server.script = [Reply("a Net", prompt_tokens=11, completion_tokens=3)]
    model = make_model()
    r = model.chat([{"role": "system", "content": "be brief"}, *HI], temperature=0.3,
                   max_tokens=50)
    assert r.text == "a Net"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.calls) == (11, 3, 1)
    assert r.model == "test-model" and r.finish_reason == "stop" and r.latency_s > 0
    body = server.requests[0].body
    assert server.requests[0].path == "/v1/chat/completions"
    assert body["model"] == "test-model" and body["temperature"] == 0.3
    assert body["max_tokens"] == 50 and body["messages"][1]["content"] == "hello model"
    assert model.usage.prompt_tokens == 11 and model.usage.calls == 1


def test_429_retry_after_is_honoured(server, make_model):
    server.script = [Reply(status=429, headers={"Retry-After": "0.4"}), "ok"]
    model = make_model(backoff_initial_s=0.01)
    start = time.monotonic()
    assert model.chat(HI).text == "ok"
    gap = server.requests[1].at - server.requests[0].at
    assert gap >= 0.38, f"Retry-After 0.4s ignored: retried after {gap:.3f}s"
    assert time.monotonic() - start >= 0.38 and model.retries_done == 1


def test_retry_after_ms_header(server, make_model):
    server.script = [Reply(status=429, headers={"retry-after-ms": "250"}), "ok"]
    make_model().chat(HI)
    assert server.requests[1].at - server.requests[0].at >= 0.23


def test_5xx_then_success_with_exponential_backoff(server, make_model):
    server.script = [Reply(status=503), Reply(status=500), "fine"]
    model = make_model(backoff_initial_s=0.1)
    assert model.chat(HI).text == "fine"
    t = [r.at for r in server.requests]
    assert len(t) == 3 and t[1] - t[0] >= 0.09 and t[2] - t[1] >= 0.19  # 0.1 then 0.2
    assert model.usage.calls == 1


def test_5xx_forever_raises_clear_error(server, make_model):
    server.script = [Reply(status=502, text="bad gateway")] * 3
    with pytest.raises(LLMError, match=r"after 3 attempts.*HTTP 502"):
        make_model(max_retries=2).chat(HI)
    assert len(server.requests) == 3


def test_4xx_is_not_retried(server, make_model):
    server.script = [Reply(status=400, text="model not found"), "never"]
    with pytest.raises(LLMError, match="rejected: HTTP 400.*model not found"):
        make_model().chat(HI)
    assert len(server.requests) == 1


def test_timeout_then_success(server, make_model):
    server.script = [Reply("late", delay_s=1.0), "on time"]
    model = make_model(timeout_s=0.3, local=False)  # remote: a timeout is retried
    assert model.chat(HI).text == "on time"
    assert len(server.requests) == 2


def test_timeout_every_time(server, make_model):
    server.script = [Reply("late", delay_s=0.8)] * 2
    with pytest.raises(LLMError, match=r"timed out after 0.2s"):
        make_model(timeout_s=0.2, max_retries=1).chat(HI)


def test_connection_refused_is_retried_then_reported():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    model = create_model("openai", base_url=f"http://127.0.0.1:{port}/v1", model="m",
                         max_retries=1, backoff_initial_s=0.01, timeout_s=2)
    with pytest.raises(LLMError, match=r"after 2 attempts: cannot connect"):
        model.chat(HI)
    assert model.retries_done == 1


@pytest.mark.parametrize("body,needle", [
    ("this is not json", "malformed response"),
    ('{"id": "x", "object": "chat.completion"}', "no choices"),
    ('{"choices": [{"index": 0, "message": {"role": "assistant", "content": null}}]}',
     "no text content"),
])
def test_malformed_bodies_give_clear_errors(server, make_model, body, needle):
    server.script = [Reply(body=body)]
    with pytest.raises(LLMError, match=needle):  # non-streamed bodies
        make_model(stream=False).chat(HI)
    assert len(server.requests) == 1  # not retried: the server answered, badly


def test_token_budget_stops_new_calls(server, make_model):
    server.script = [Reply("a", prompt_tokens=15, completion_tokens=5)] * 3
    model = make_model(max_total_tokens=30)
    model.chat(HI)
    model.chat(HI)  # 20 < 30 used before this call: allowed
    with pytest.raises(BudgetExceeded, match=r"40 tokens used of max 30"):
        model.chat(HI)
    assert len(server.requests) == 2  # the third call never reached the server


def test_money_budget_uses_price_table(server, make_model):
    server.script = [Reply("a", prompt_tokens=1000, completion_tokens=1000)] * 3
    model = make_model(prices={"test-model": Price(prompt=1.0, completion=3.0)},
                       max_cost_usd=0.005)
    r = model.chat(HI)
    assert r.usage.cost_usd == pytest.approx(0.004)
    model.chat(HI)
    with pytest.raises(BudgetExceeded, match=r"\$0.0080 used of max \$0.0050"):
        model.chat(HI)


def test_money_budget_holds_for_a_dated_snapshot_model_id(server, make_model):
    server.script = [Reply("a", prompt_tokens=10_000, completion_tokens=10_000)] * 2
    model = make_model(model="gpt-4o-mini-2024-07-18", max_cost_usd=0.005)
    r = model.chat(HI)  # the default table's gpt-4o-mini price, not gpt-4o's, not free
    assert r.usage.cost_usd == pytest.approx((10_000 * 0.15 + 10_000 * 0.6) / 1e6)
    assert make_model(model="gpt-4o-2024-08-06").price.prompt == 2.5
    assert make_model(model="my-local-model").price is None
    with pytest.raises(BudgetExceeded, match=r"money budget"):
        model.chat(HI)
    assert len(server.requests) == 1


def test_env_configuration(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("ARCHLORE_LLM_MODEL", "env-model")
    server.script = ["from env"]
    model = create_model("openai")
    assert model.chat(HI).text == "from env"
    assert server.requests[0].body["model"] == "env-model"


def test_registry_lists_backends_and_rejects_unknown():
    assert {"openai", "replay", "scripted"} <= set(list_backends())
    with pytest.raises(ValueError, match="unknown LLM backend 'nope'.*openai"):
        create_model("nope")
