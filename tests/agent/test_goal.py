"""Targeted requests -> Goal: the offline rules, and an LLM answering JSON over HTTP."""

from __future__ import annotations

import json

import pytest
from archlore.agent.goal import Goal, GoalParseError, parse_goal
from archlore.knowledge.schema import Category as C


@pytest.mark.parametrize("text,dataset,mmacs,params,required,excluded", [
    ("a CIFAR-10 network under 50 MFLOPs that uses attention", "cifar10", 50, None,
     [C.ATTENTION], []),
    ("cifar100 classifier, at most 200k params, no dropout, with squeeze-and-excitation",
     "cifar100", None, 200_000, [C.ATTENTION], [C.REGULARIZATION]),
    ("ImageNet16-120 model below 1.5 GFLOPs and 2M parameters", "imagenet16-120", 1500,
     2_000_000, [], []),
    ("digits net < 0.3 MMACs with residual connections and without attention", "digits", 0.3,
     None, [C.CONNECTIVITY], [C.ATTENTION]),
    ("a tiny network without batch norm but with GELU", None, None, None, [C.ACTIVATION],
     [C.NORMALIZATION]),
    ("CIFAR 10 model, 40 million MACs, 1.5 k params", "cifar10", 40, 1500, [], []),
    ("cifar10 at 5e7 FLOPs using depthwise separable convolutions", "cifar10", 50, None,
     [C.BLOCK_TYPE], []),
    # thousands separators, not decimal commas; a decimal comma still works
    ("cifar10 under 100,000 params and 50,000,000 FLOPs", "cifar10", 50, 100_000, [], []),
    ("digits, 1,5 M params", "digits", None, 1_500_000, [], []),
    ("cifar10 under 0.5 MFLOPs and 1.2M parameters", "cifar10", 0.5, 1_200_000, [], []),
    ("cifar10 with 50M FLOPs and 200k params", "cifar10", 50, 200_000, [], []),
    ("cifar100 under 5 GFLOPs", "cifar100", 5000, None, [], []),
    ("a 2M-parameter, 50-MFLOP cifar10 net", "cifar10", 50, 2_000_000, [], []),
    ("a 300k-param digits model at 20M-MACs", "digits", 20, 300_000, [], []),
])
def test_rule_based_goals(text, dataset, mmacs, params, required, excluded):
    g = parse_goal(text)
    assert g.dataset == dataset
    assert g.max_mmacs == (pytest.approx(mmacs) if mmacs is not None else None)
    assert g.max_params == params
    assert g.required_categories == required and g.excluded_categories == excluded
    assert g.text == text and g.source == "rules"


def test_goal_to_constraints_and_instruction():
    g = parse_goal("a CIFAR-100 network under 20 MFLOPs that uses attention, no dropout")
    c = g.constraints()
    assert (c.dataset, c.in_channels, c.image_size, c.num_classes, c.max_mmacs) == \
        ("cifar100", 3, 32, 100, 20)
    assert "must use: attention" in g.instruction()
    assert "must not use: regularization" in g.instruction()
    assert parse_goal("small net").constraints("digits").image_size == 8


def test_bad_requests():
    with pytest.raises(GoalParseError, match="empty"):
        parse_goal("  ")
    with pytest.raises(GoalParseError, match="'svhn' is not supported"):
        parse_goal("an SVHN network")
    assert parse_goal("an MNIST network").dataset == "mnist"
    assert parse_goal("a Fashion-MNIST net under 1 MFLOPs").dataset == "fashion-mnist"
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        Goal(dataset="svhn")


def test_llm_goal_with_schema_over_http(server, make_model):
    answer = {"dataset": "cifar10", "max_mmacs": 50, "max_params": None,
              "required_categories": ["attention"], "excluded_categories": [],
              "text": "ignored"}
    server.script = ["```json\n" + json.dumps(answer) + "\n```"]
    text = "something for CIFAR-10, fifty megaflops, attention please"
    g = parse_goal(text, model=make_model())
    assert (g.dataset, g.max_mmacs, g.required_categories, g.source) == \
        ("cifar10", 50, [C.ATTENTION], "llm")
    assert g.text == text
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert "FLOPs = MACs" in body["messages"][0]["content"]


def test_llm_goal_retried_once_then_rules(server, make_model):
    good = {"dataset": "cifar100", "max_mmacs": None, "max_params": 100000,
            "required_categories": [], "excluded_categories": ["attention"], "text": ""}
    server.script = ['{"dataset": "svhn"}', json.dumps(good)]
    g = parse_goal("cifar100 without attention, 100k params", model=make_model())
    assert g.source == "llm" and g.max_params == 100000
    assert "unknown dataset 'svhn'" in server.requests[1].body["messages"][-1]["content"]

    server.script = ["not json", '{"required_categories": ["teleportation"]}']
    g = parse_goal("a CIFAR-10 network under 50 MFLOPs", model=make_model())
    assert g.source.startswith("rules (llm answer invalid") and g.max_mmacs == 50


def test_llm_goal_falls_back_when_server_rejects_json_schema(server, make_model):
    from archlore.agent.llm.local_server import Reply

    good = {"dataset": "digits", "max_mmacs": 2, "max_params": None,
            "required_categories": [], "excluded_categories": [], "text": ""}
    server.script = [Reply(status=400, text="response_format json_schema not supported"),
                     json.dumps(good)]
    g = parse_goal("digits under 2 MMACs", model=make_model())
    assert g.source == "llm" and g.max_mmacs == 2
    assert "response_format" in server.requests[0].body
    assert "response_format" not in server.requests[1].body
