"""make_mutator: the CLI's factory for LLM mutators (the offline one is tested with it)."""

from __future__ import annotations

import pytest
from archlore.agent.llm.openai_backend import OpenAIModel
from archlore.agent.llm.replay import RecordingModel
from archlore.agent.llm_mutator import LLMMutator
from archlore.agent.mutators import make_mutator
from archlore.search.protocol import MutationRequest, Mutator, ParentInfo

from tests.agent.conftest import PARENT


def test_make_llm_mutator_over_http_with_options(server, tmp_path):
    server.script = ["```python\n" + PARENT.replace("16, 32", "16, 48").replace("(32, num", "(48, num") + "```"]
    cassette = tmp_path / "rec.jsonl"
    mutator = make_mutator("openai", base_url=server.base_url, model="m-1", mode="full",
                           max_repair_turns=0, record=str(cassette), api_key=None)
    assert isinstance(mutator, Mutator) and isinstance(mutator, LLMMutator)
    assert mutator.name == "llm" and mutator.mode == "full" and mutator.max_repair_turns == 0
    assert isinstance(mutator.model, RecordingModel)
    assert isinstance(mutator.model.inner, OpenAIModel)
    result = mutator.mutate(MutationRequest(operator="refine", parents=[ParentInfo(code=PARENT)]))
    assert result.code and result.mode == "full"
    assert server.requests[0].body["model"] == "m-1" and cassette.read_text().count("\n") == 1


def test_make_mutator_rejects_unknown_backend_and_mode():
    with pytest.raises(ValueError, match="unknown LLM backend 'gpt5'"):
        make_mutator("gpt5")
    with pytest.raises(ValueError, match="mode must be one of delta, full, structured"):
        make_mutator("scripted", mode="diff")
