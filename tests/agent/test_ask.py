"""`archlore ask` end to end: LLM goal + targeted search over real HTTP, then replay offline."""

from __future__ import annotations

import itertools
import json

import pytest
from archlore.agent.cli.ask import best_for_goal, targeted_ideas
from archlore.agent.cli.main import app
from archlore.agent.goal import parse_goal
from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Category, Idea
from archlore.search.records import Candidate
from typer.testing import CliRunner

SE_NET = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class SE(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Linear(c, max(1, c // r))
        self.fc2 = nn.Linear(max(1, c // r), c)

    def forward(self, x):
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * w[:, :, None, None]


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, WIDTH, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(WIDTH)
        self.se = SE(WIDTH)
        self.fc = nn.Linear(WIDTH, num_classes)

    def forward(self, x):
        x = self.se(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))
'''
REQUEST = "a digits network under 1 MFLOPs that uses attention"


def test_ask_over_http_then_replay_without_server(server, tmp_path, monkeypatch):
    widths = itertools.count()

    def respond(body: dict) -> str:
        if "JSON object" in body["messages"][0]["content"]:  # the goal schema prompt
            return json.dumps({"dataset": "digits", "max_mmacs": 1.0, "max_params": None,
                               "required_categories": ["attention"],
                               "excluded_categories": [], "text": ""})
        return "```python\n" + SE_NET.replace("WIDTH", str(8 + 4 * next(widths))) + "```"

    server.responder = respond
    monkeypatch.setenv("ARCHLORE_HOME", str(tmp_path / "home"))
    cassette = tmp_path / "ask.jsonl"
    common = ["--budget", "3", "--epochs", "0.5", "--workers", "2", "--json"]
    runner = CliRunner()
    first = runner.invoke(app, ["ask", REQUEST, "--llm", "openai", "--base-url", server.base_url,
                                "--model", "m", "--record", str(cassette),
                                "--out", str(tmp_path / "o1"), *common])
    assert first.exit_code == 0, first.output
    a = json.loads(first.output)
    assert a["goal"]["source"] == "llm" and a["goal"]["max_mmacs"] == 1.0
    best = a["best"]
    assert "class SE(nn.Module)" in a["code"] and best["mmacs"] <= 1.0
    cats = [row["category"] for row in best["lineage"] if row["category"]]
    assert "attention" in cats and best["lineage"][-1]["papers"]  # idea + its paper
    assert (tmp_path / "o1" / "best_model.py").read_text().startswith("# archlore ask: ")
    server.stop()

    second = runner.invoke(app, ["ask", REQUEST, "--llm", "replay", "--cassette", str(cassette),
                                 "--out", str(tmp_path / "o2"), *common])
    assert second.exit_code == 0, second.output
    b = json.loads(second.output)
    assert b["code"] == a["code"] and b["best"]["id"] == best["id"]
    assert b["best"]["val_acc"] == best["val_acc"]
    assert a["valid_rate_by_mode"]["full"]["n"] >= 1  # the scripted answers are full code


def test_ask_rejects_bad_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLORE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["ask", "an SVHN classifier"])
    assert result.exit_code == 2 and "'svhn' is not supported" in result.output


def _cand(cid, parents, idea_id, acc, macs=1000, status="ok"):
    return Candidate(id=cid, code="x", parents=parents, idea_id=idea_id, operator="idea",
                     status="evaluated", evaluation=Evaluation(
                         status=status, stage="eval", val_acc=acc, macs=macs, params=100))


def test_best_for_goal_follows_lineage_and_caps():
    ideas = {"se": Idea(id="se", name="SE", category=Category.ATTENTION, description="d"),
             "drop": Idea(id="drop", name="Dropout", category=Category.REGULARIZATION,
                          description="d")}
    goal = parse_goal("digits net under 0.002 MMACs with attention, without dropout")
    cands = [_cand(0, [], None, 0.9), _cand(1, [0], "se", 0.7), _cand(2, [1], None, 0.8),
             _cand(3, [1], "drop", 0.95), _cand(4, [1], None, 0.99, macs=5000),
             _cand(5, [1], None, 0.99, status="rejected")]
    best, chain = best_for_goal(cands, ideas, goal)
    assert best.id == 2 and [c.id for c in chain] == [0, 1, 2]
    assert targeted_ideas(goal, list(ideas.values())) == [ideas["se"]]
    with pytest.raises(ValueError, match="no idea of category connectivity"):
        targeted_ideas(parse_goal("with residual connections"), list(ideas.values()))


def test_ask_stops_cleanly_when_llm_budget_is_spent(server, tmp_path, monkeypatch):
    server.responder = lambda body: json.dumps(
        {"dataset": "digits", "max_mmacs": None, "max_params": None,
         "required_categories": ["attention"], "excluded_categories": [], "text": ""})
    monkeypatch.setenv("ARCHLORE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, [
        "ask", "a digits network that uses attention", "--llm", "openai", "--base-url",
        server.base_url, "--model", "m", "--llm-budget-tokens", "10", "--budget", "3",
        "--epochs", "0.2", "--json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output  # only seeds evaluated: none uses attention
    summary = json.loads((tmp_path / "o" / "ask.json").read_text())
    assert "token budget spent" in summary["stopped"] and summary["found"] is False
    assert len(server.requests) == 1  # the goal call; no mutation call went out


def test_ask_offline_meets_caps_and_categories(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHLORE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, [
        "ask", "a digits network under 0.5 MFLOPs that uses attention, without dropout",
        "--budget", "6", "--epochs", "0.5", "--json", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["goal"]["source"] == "rules" and s["goal"]["excluded_categories"] == ["regularization"]
    best = s["best"]
    assert best["mmacs"] <= 0.5 and best["val_acc"] is not None
    cats = [row["category"] for row in best["lineage"] if row["category"]]
    assert "attention" in cats and "regularization" not in cats
    assert s["valid_rate_by_mode"]["offline"]["n"] >= 1
    assert (tmp_path / "o" / "best_model.py").read_text().count("class Net(") == 1
