"""Record a mutation run over HTTP, stop the server, replay it: same candidates, no server."""

from __future__ import annotations

import json

import pytest
from archlore.agent.llm import LLMError, create_model
from archlore.agent.llm.replay import CassetteMiss, RecordingModel, ReplayModel
from archlore.agent.llm.scripted import ScriptedModel
from archlore.agent.llm_mutator import LLMMutator
from archlore.agent.mutators import make_mutator
from archlore.search.protocol import MutationRequest, ParentInfo

from tests.agent.conftest import PARENT


def _edit(old: str, new: str) -> str:
    return f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


ANSWERS = [
    _edit("        x = F.relu(self.conv2(x))", "        x = F.gelu(self.conv2(x))"),
    _edit("        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)",
          "        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)"),
    "```python\n" + PARENT.replace("32", "48") + "```",
]


def _requests() -> list[MutationRequest]:
    parent = ParentInfo(code=PARENT)
    return [MutationRequest(operator="mutate", parents=[parent], seed=s) for s in range(3)]


def test_replay_reproduces_recorded_run_without_server(server, make_model, tmp_path):
    cassette = tmp_path / "run.jsonl"
    server.script = list(ANSWERS)
    recorded = [LLMMutator(RecordingModel(make_model(), cassette)).mutate(r)
                for r in _requests()]
    assert [r.mode for r in recorded] == ["delta", "delta", "full"]
    assert all(r.code for r in recorded)
    server.stop()  # nothing answers on that port any more

    lines = [json.loads(line) for line in cassette.read_text().splitlines()]
    assert len(lines) == 3 and all(len(line["key"]) == 64 for line in lines)
    mutator = make_mutator("replay", cassette=str(cassette))  # one model for the whole run
    replayed = [mutator.mutate(r) for r in _requests()]
    assert [r.code for r in replayed] == [r.code for r in recorded]
    assert [r.mode for r in replayed] == [r.mode for r in recorded]
    assert [r.usage for r in replayed] == [r.usage for r in recorded]


def test_a_failed_call_is_recorded_and_replayed_as_a_failure(server, make_model, tmp_path):
    """The same request failing, then succeeding: replay must fail the first and answer the
    second, not hand the second's answer to the first."""
    from archlore.agent.llm.local_server import Reply

    cassette = tmp_path / "fail.jsonl"
    server.script = [Reply(status=400, text="bad request"), "second try works"]
    recording = RecordingModel(make_model(), cassette)
    ask = [{"role": "user", "content": "same question"}]
    with pytest.raises(LLMError, match="HTTP 400") as recorded_error:
        recording.chat(ask)
    assert recording.chat(ask).text == "second try works"
    server.stop()

    replay = ReplayModel(cassette)
    with pytest.raises(LLMError) as replayed_error:
        replay.chat(ask)
    assert str(replayed_error.value) == str(recorded_error.value)
    assert replay.chat(ask).text == "second try works"
    assert replay.model_id == "test-model"


def test_a_spent_budget_is_recorded_and_stops_the_replay_at_the_same_call(server, make_model,
                                                                          tmp_path):
    from archlore.agent.llm import BudgetExceeded
    from archlore.agent.llm.local_server import Reply

    cassette = tmp_path / "budget.jsonl"
    server.script = [Reply("one", prompt_tokens=20, completion_tokens=20)]
    recording = RecordingModel(make_model(max_total_tokens=30), cassette)
    assert recording.chat([{"role": "user", "content": "q1"}]).text == "one"
    with pytest.raises(BudgetExceeded):
        recording.chat([{"role": "user", "content": "q2"}])
    server.stop()

    replay = ReplayModel(cassette)
    assert replay.chat([{"role": "user", "content": "q1"}]).text == "one"
    with pytest.raises(BudgetExceeded, match="40 tokens used of max 30"):
        replay.chat([{"role": "user", "content": "q2"}])  # not a CassetteMiss


def test_replay_miss_and_bad_cassettes_are_clear(tmp_path):
    cassette = tmp_path / "c.jsonl"
    model = RecordingModel(ScriptedModel(["one"]), cassette)
    model.chat([{"role": "user", "content": "first question"}])
    replay = ReplayModel(cassette)
    assert replay.chat([{"role": "user", "content": "first question"}]).text == "one"
    with pytest.raises(CassetteMiss, match="no \\(more\\) recorded answer.*first question"):
        replay.chat([{"role": "user", "content": "first question"}])  # used up
    with pytest.raises(CassetteMiss, match="other question"):
        replay.chat([{"role": "user", "content": "other question"}])
    with pytest.raises(LLMError, match="cassette not found"):
        ReplayModel(tmp_path / "missing.jsonl")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"key": "abc"}\n')
    with pytest.raises(LLMError, match="line 1 is not a recorded call"):
        ReplayModel(broken)
    with pytest.raises(ValueError, match="needs a cassette"):
        create_model("replay")
