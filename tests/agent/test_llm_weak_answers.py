"""What small local models answer, over real HTTP: parent echoes (no-ops), children without
the parent's imports and helpers (merged back), repairs that see parent + child + error,
generation caps sized to the task, prompt budgets, LLM goals checked against the request."""

from __future__ import annotations

import json

from archlore.agent.codeparse import merge_parent_context, normalized, same_behaviour
from archlore.agent.goal import Goal, check_goal, parse_goal
from archlore.agent.llm.local_server import Reply
from archlore.agent.llm_mutator import LLMMutator
from archlore.agent.prompt_budget import estimate_tokens, fit_values
from archlore.knowledge.schema import Category
from archlore.search.protocol import Constraints, MutationRequest, Outcome, ParentInfo
from archlore.search.spaces.open import OpenSpace

from tests.agent.test_llm_mutator import valid_child

DIGITS = Constraints(dataset="digits", in_channels=1, num_classes=10, image_size=8,
                     max_mmacs=0.5)
PARENT = OpenSpace().render(OpenSpace().seeds(DIGITS)[1], DIGITS)  # resnet seed: helpers


def net_only(code: str) -> str:
    """Just ``class Net`` of ``code`` (what weak answers often hold)."""
    return code[code.index("class Net("):]


def req(**kw) -> MutationRequest:
    return MutationRequest(operator=kw.pop("operator", "mutate"),
                           parents=kw.pop("parents", [ParentInfo(candidate_id=1, code=PARENT)]),
                           constraints=DIGITS, **kw)


def test_spec_comment_and_formatting_changes_are_the_same_behaviour():
    header = PARENT.splitlines()[0]
    assert header.startswith("# archlore-spec:")
    echo = PARENT.replace(header, header.replace('"relu"', '"gelu"')) + "\n# tuned\n"
    assert same_behaviour(echo, PARENT)
    assert not same_behaviour(PARENT.replace("inplace=True", "inplace=False"), PARENT)
    assert normalized("def f(:") is None


def test_parent_echo_is_retried_once_then_recorded_as_no_op(server, make_model):
    echo = "```python\n" + "\n".join(PARENT.splitlines()[1:]) + "```"  # header dropped
    server.script = [echo, echo]
    res = LLMMutator(make_model(), mode="full").mutate(req(instruction="use GELU"))
    assert res.status == "no_op" and res.code is None and "no-op" in res.error
    assert len(server.requests) == 2
    assert "use GELU" in server.requests[1].body["messages"][-1]["content"]


def test_echo_then_a_real_change_is_ok(server, make_model):
    echo = "```python\n" + PARENT + "```"
    changed = "```python\n" + PARENT.replace("nn.ReLU(inplace=True)", "nn.GELU()") + "```"
    server.script = [echo, changed]
    res = LLMMutator(make_model(), mode="full").mutate(req(instruction="use GELU"))
    assert res.status == "ok" and "nn.GELU()" in res.code and valid_child(res.code)


def test_net_only_answer_gets_the_parents_imports_and_helpers(server, make_model):
    child = net_only(PARENT).replace("super().__init__()", "super().__init__()\n        "
                                     "self.extra = nn.Identity()", 1)
    server.script = ["```python\n" + child + "```"]
    res = LLMMutator(make_model(), mode="full").mutate(req())
    assert res.status == "ok", res.error
    assert "import torch" in res.code and "restored from the parent" in res.notes
    assert valid_child(res.code)


def test_merge_parent_context_is_transitive_and_keeps_child_definitions():
    merged, added = merge_parent_context(net_only(PARENT), PARENT)
    assert "nn" in added and same_behaviour(merged, PARENT)
    assert merge_parent_context(PARENT, PARENT) == (PARENT, [])


def test_check_failure_repair_prompt_shows_parent_child_and_error(server, make_model):
    broken = PARENT.replace("nn.ReLU(inplace=True)", "nn.Swoosh()")

    def check(code, constraints):
        return "AttributeError: module 'torch.nn' has no attribute 'Swoosh'" \
            if "Swoosh" in code else None

    fixed = PARENT.replace("nn.ReLU(inplace=True)", "nn.SiLU()")
    server.script = ["```python\n" + broken + "```", "```python\n" + fixed + "```"]
    res = LLMMutator(make_model(), mode="full", check=check).mutate(req())
    assert res.status == "ok" and "nn.SiLU()" in res.code
    fix = server.requests[1].body["messages"]
    assert len(fix) == 2  # a fresh, short conversation
    text = fix[-1]["content"]
    assert "it works" in text and "nn.ReLU(inplace=True)" in text  # the parent
    assert "nn.Swoosh()" in text and "has no attribute 'Swoosh'" in text  # child + error


def test_repair_operator_shows_the_failed_childs_parent(server, make_model):
    failed = PARENT.replace("nn.ReLU(inplace=True)", "nn.GELU()").replace(
        "kernel: int = 3", "kernel: int = 9")
    fixed = PARENT.replace("nn.ReLU(inplace=True)", "nn.GELU()")
    server.script = ["```python\n" + fixed + "```"]
    from archlore.search.protocol import Failure

    res = LLMMutator(make_model(), mode="full").mutate(req(
        operator="repair", parents=[ParentInfo(code=failed), ParentInfo(code=PARENT)],
        failure=Failure(status="rejected", stage="cost", reason="2.1 MMACs > 0.5")))
    assert res.status == "ok"
    user = server.requests[0].body["messages"][-1]["content"]
    assert "derived from" in user and "2.1 MMACs" in user


def test_generation_cap_is_sized_to_the_task(server, make_model):
    server.script = ["```python\n" + PARENT.replace("nn.ReLU(inplace=True)", "nn.GELU()") + "```"]
    LLMMutator(make_model(), mode="full").mutate(req())
    cap = server.requests[0].body["max_tokens"]
    assert estimate_tokens(PARENT) < cap < 4096


def test_prompt_budget_trims_feedback_first_and_records_sizes(server, make_model):
    history = [Outcome(candidate_id=i, operator="mutate", verdict="worse",
                       metrics={"val_acc": 0.5 + i / 100}) for i in range(8)]
    parents = [ParentInfo(candidate_id=9, code=PARENT, history=history)]
    answer = "```python\n" + PARENT.replace("nn.ReLU(inplace=True)", "nn.GELU()") + "```"
    server.script = [answer, answer]
    full = LLMMutator(make_model(), mode="full").mutate(req(operator="refine", parents=parents))
    # the context less the answer cap leaves ~60 tokens too few for the whole prompt
    context = full.prompt_tokens_est + int(estimate_tokens(PARENT) * 1.4) + 256 + 32 - 60
    small = LLMMutator(make_model(), mode="full", context_tokens=context
                       ).mutate(req(operator="refine", parents=parents))
    assert full.prompt_trimmed == [] and small.prompt_trimmed
    # lossless first: the parent shown without docstrings, comments and unused helpers
    assert small.prompt_trimmed[0].startswith("parent code (compacted")
    assert small.prompt_tokens_est < full.prompt_tokens_est
    sent = server.requests[1].body["messages"][-1]["content"]
    assert "class Net(" in sent and "# archlore-spec" not in sent  # parent kept, compacted
    assert small.status == "ok" and "trimmed" in small.notes
    # a budget too small even for the compact parent: the feedback goes next
    server.script = [answer]
    tiny = LLMMutator(make_model(), mode="full", context_tokens=context - 700
                      ).mutate(req(operator="refine", parents=parents))
    assert tiny.prompt_trimmed[1].startswith("history")


def test_context_defaults_to_what_the_server_reports(server, make_model):
    server.props = {"default_generation_settings": {"n_ctx": 2048}, "total_slots": 1}
    assert LLMMutator(make_model()).context_tokens == 2048
    server.props = None
    server.context = 4096  # vLLM-style max_model_len
    assert LLMMutator(make_model(local=False)).context_tokens == 4096


def test_fit_values_summarises_then_cuts_then_drops():
    render = lambda v: f"{v['task']}\n{v['a']}\n{v['b']}"  # noqa: E731
    values = {"task": "T" * 40, "a": "\n".join(["x" * 30] * 10), "b": "\n".join(["y" * 30] * 5)}
    out = fit_values(render, values, [("a", None), ("b", "summary")], 40)
    assert "T" * 40 in out.text and out.tokens_after <= 40 and out.tokens_before > 100
    assert out.trimmed[0] == "a (dropped)"


def test_llm_goal_echoing_the_prompt_examples_is_corrected(server, make_model):
    text = "a digits network under 0.2 MFLOPs that uses attention"
    server.script = [json.dumps({"dataset": "cifar10", "max_mmacs": 50, "max_params": 100000,
                                 "required_categories": ["attention"],
                                 "excluded_categories": [], "text": text})]
    g = parse_goal(text, model=make_model())
    assert (g.dataset, g.max_mmacs, g.max_params) == ("digits", 0.2, None)
    assert g.required_categories == [Category.ATTENTION] and g.source == "llm+rules"
    assert len(g.notes) == 3 and server.requests[0].body["max_tokens"] <= 256


def test_check_goal_keeps_numbers_the_request_contains():
    text = "cifar-10, two hundred thousand parameters, no dropout"
    g = check_goal(Goal(dataset="cifar10", max_params=200_000, text=text,
                        excluded_categories=[Category.REGULARIZATION]), text)
    assert g.max_params == 200_000 and g.notes == []


def test_nb201_parent_echo_is_a_no_op(server, make_model):
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|" \
           "avg_pool_3x3~2|"
    server.script = ["ARCH: " + cell, Reply("ARCH: " + cell)]
    res = LLMMutator(make_model()).mutate(MutationRequest(
        operator="mutate", space="nb201", parents=[ParentInfo(arch=cell)], constraints=DIGITS))
    assert res.status == "no_op" and len(server.requests) == 2


def test_llm_goal_zero_caps_mean_no_cap(server, make_model):
    text = "a CIFAR-10 network under 50 MFLOPs without dropout"
    server.script = [json.dumps({"dataset": "cifar10", "max_mmacs": 50, "max_params": 0,
                                 "required_categories": [],
                                 "excluded_categories": ["regularization"], "text": text})]
    g = parse_goal(text, model=make_model())
    assert (g.max_mmacs, g.max_params, g.source) == (50, None, "llm")


def test_llm_goal_invented_categories_are_dropped():
    text = "a CIFAR-10 network under 50 MFLOPs without dropout"
    llm = Goal(dataset="cifar10", max_mmacs=50, text=text,
               required_categories=[Category.CONNECTIVITY, Category.ATTENTION,
                                    Category.REGULARIZATION])
    g = check_goal(llm, text)
    assert g.required_categories == [] and g.excluded_categories == [Category.REGULARIZATION]
    assert g.source == "llm+rules" and len(g.notes) == 2
