"""LLMMutator end to end over real HTTP with scripted SEARCH/REPLACE and full-code answers.

Every produced child is checked with the evaluator's static policy and an in-process
build + shape check on the digits shape (1x8x8, 10 classes).
"""

from __future__ import annotations

import pytest
import torch
from archlore.agent.llm import BudgetExceeded
from archlore.agent.llm.local_server import Reply
from archlore.agent.llm_mutator import LLMMutator
from archlore.evaluator import policy
from archlore.evaluator.cascade import build_model, check_shape, count_macs
from archlore.evaluator.records import Evaluation
from archlore.knowledge.schema import Category, Idea, Provenance
from archlore.search.protocol import Constraints, Failure, MutationRequest, Outcome, ParentInfo

from tests.agent.conftest import PARENT

DIGITS = Constraints(dataset="digits", in_channels=1, num_classes=10, image_size=8,
                     max_mmacs=0.5)
SE_EDIT = '''I will add a squeeze-and-excitation block after conv2.

<<<<<<< SEARCH
class Net(nn.Module):
=======
class SE(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Linear(c, c // r)
        self.fc2 = nn.Linear(c // r, c)

    def forward(self, x):
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * w[:, :, None, None]


class Net(nn.Module):
>>>>>>> REPLACE

<<<<<<< SEARCH
        self.pool = nn.AdaptiveAvgPool2d(1)
=======
        self.se = SE(32)
        self.pool = nn.AdaptiveAvgPool2d(1)
>>>>>>> REPLACE

<<<<<<< SEARCH
        x = F.relu(self.conv2(x))
=======
        x = self.se(F.relu(self.conv2(x)))
>>>>>>> REPLACE
'''
IDEA = Idea(id="squeeze-excitation", name="Squeeze-and-Excitation", category=Category.ATTENTION,
            description="Reweight channels with a gating vector from global pooling.",
            operator="SE block", ratios={"se": 0.25}, provenance=[Provenance(
                paper_id="1709.01507", title="Squeeze-and-Excitation Networks", page=3,
                quote="SE blocks bring significant improvements at slight computational cost")])


CHILD = PARENT.replace("self.conv2 = nn.Conv2d(16, 32, 3, padding=1)",
                       "self.conv2 = nn.Conv2d(16, 32, 3, padding=1)\n        self.bn2 = nn.BatchNorm2d(32)"
                       ).replace("x = F.relu(self.conv2(x))", "x = F.relu(self.bn2(self.conv2(x)))")


def valid_child(code: str) -> bool:
    """Static policy + build + shape check on the digits shape, within the MACs cap."""
    assert policy.check_source(code) == [], policy.check_source(code)
    model = build_model(code, num_classes=10, in_channels=1)
    check_shape(model, (1, 8, 8), 10, torch.device("cpu"))
    return count_macs(model, (1, 8, 8)) / 1e6 <= DIGITS.max_mmacs


def request(operator="idea", **kw) -> MutationRequest:
    parent = ParentInfo(candidate_id=3, code=PARENT, history=[Outcome(
                            candidate_id=1, operator="idea", verdict="better",
                            metrics={"val_acc": 0.91, "macs": 200_000.0})],
                        evaluation=Evaluation(status="ok", stage="eval", val_acc=0.93,
                                              macs=300_000, params=6000))
    return MutationRequest(operator=operator, parents=[parent], constraints=DIGITS, **kw)


def test_idea_mutation_applies_search_replace_blocks(server, make_model):
    server.script = [SE_EDIT]
    result = LLMMutator(make_model(), mode="delta").mutate(
        request(idea=IDEA, chunks=["We propose the SE block, which adaptively recalibrates."]))
    assert result.error is None and result.mode == "delta"
    assert "class SE(nn.Module)" in result.code and "self.se = SE(32)" in result.code
    assert valid_child(result.code)
    sent = server.requests[0].body["messages"]
    system, user = sent[0]["content"], sent[1]["content"]
    assert "<<<<<<< SEARCH" in system and "Net(num_classes=10, in_channels=1)" in system
    for needle in ("SE blocks bring significant improvements", "Squeeze-and-Excitation Networks",
                   "adaptively recalibrates", "stay under 0.5 MMACs", "0.9300",
                   "#1 idea: val_acc 91.000 %", "self.fc = nn.Linear(32, num_classes)"):
        assert needle in user, needle
    assert result.usage.calls == 1 and result.usage.prompt_tokens > 0


def test_mismatched_block_gets_precise_reason_and_one_retry(server, make_model):
    bad = SE_EDIT.replace("        x = F.relu(self.conv2(x))\n=======",
                          "        x = F.relu(self.conv_2(x))\n=======")
    server.script = [bad, SE_EDIT]
    result = LLMMutator(make_model()).mutate(request(idea=IDEA))
    assert result.error is None and result.mode == "delta" and valid_child(result.code)
    retry = server.requests[1].body["messages"][-1]["content"]
    assert "block 3" in retry and "x = F.relu(self.conv_2(x))" in retry
    assert "closest parent line 17: 'x = F.relu(self.conv2(x))'" in retry
    assert "edit retry" in result.notes


def test_mismatch_without_retry_reports_the_block(server, make_model):
    server.script = [SE_EDIT.replace("self.pool = nn.AdaptiveAvgPool2d(1)\n=", "self.pool = "
                                     "nn.AdaptiveMaxPool2d(1)\n=")]
    result = LLMMutator(make_model(), edit_retry=False, max_repair_turns=0).mutate(request())
    assert result.code is None and len(server.requests) == 1
    assert "block 2" in result.error and "closest parent line 12" in result.error


def test_full_code_answer_is_accepted_in_delta_mode(server, make_model):
    full = ("Here is the improved network:\n```python\n"
            + PARENT.replace("F.relu(self.conv2(x))", "F.gelu(self.conv2(x))")
            + "\nif __name__ == '__main__':\n    print(Net())\n```\nIt uses GELU.")
    server.script = [full]
    result = LLMMutator(make_model(), mode="delta").mutate(request(instruction="use GELU"))
    assert result.mode == "full" and "F.gelu" in result.code and "__main__" not in result.code
    assert valid_child(result.code)


def test_full_mode_asks_for_complete_code(server, make_model):
    server.script = ["```python\n" + CHILD + "```"]
    result = LLMMutator(make_model(), mode="full").mutate(request(operator="refine"))
    assert result.mode == "full" and valid_child(result.code)
    assert "single ```python fenced block" in server.requests[0].body["messages"][0]["content"]


def test_policy_violation_goes_back_for_repair(server, make_model):
    evil = "```python\nimport os\n" + CHILD + "```"
    server.script = [evil, "```python\n" + CHILD + "```"]
    result = LLMMutator(make_model(), mode="full", max_repair_turns=1).mutate(request())
    assert result.error is None and valid_child(result.code)
    feedback = server.requests[1].body["messages"][-1]["content"]
    assert "line 1" in feedback and "os" in feedback
    assert "repair turn 1" in result.notes


def test_repair_turns_are_bounded(server, make_model):
    evil = "```python\nimport subprocess\n" + CHILD + "```"
    server.script = [evil] * 3
    result = LLMMutator(make_model(), mode="full", max_repair_turns=2).mutate(request())
    assert result.code is None and "subprocess" in result.error
    assert len(server.requests) == 3


def test_repair_operator_sends_the_error(server, make_model):
    broken = PARENT.replace("nn.Linear(32, num_classes)", "nn.Linear(64, num_classes)")
    fix = ("<<<<<<< SEARCH\n        self.fc = nn.Linear(64, num_classes)\n=======\n"
           "        self.fc = nn.Linear(32, num_classes)\n>>>>>>> REPLACE\n")
    server.script = [fix]
    req = request(operator="repair", failure=Failure(
        status="rejected", stage="shape",
        reason="mat1 and mat2 shapes cannot be multiplied (2x32 and 64x10)"))
    req.parents[0].code = broken
    result = LLMMutator(make_model()).mutate(req)
    assert result.mode == "delta" and valid_child(result.code)
    assert "mat1 and mat2 shapes" in server.requests[0].body["messages"][1]["content"]


def test_crossover_keeps_the_child_and_its_helpers(server, make_model):
    other = PARENT.replace("16", "24").replace("F.relu(self.conv2(x))", "F.silu(self.conv2(x))")
    answer = ("```python\n" + PARENT.replace("class Net(", "class Net1(") + "```\n"
              "```python\n" + other.replace("class Net(", "class Net2(") + "```\n"
              "Combined:\n```python\nimport torch\nimport torch.nn as nn\n"
              "import torch.nn.functional as F\n\n\ndef block(cin, cout):\n"
              "    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout))\n"
              "\n\nclass Net3(nn.Module):\n"
              "    def __init__(self, num_classes=10, in_channels=1):\n"
              "        super().__init__()\n        self.a = block(in_channels, 24)\n"
              "        self.b = block(24, 32)\n        self.fc = nn.Linear(32, num_classes)\n\n"
              "    def forward(self, x):\n        x = F.silu(self.b(F.relu(self.a(x))))\n"
              "        return self.fc(x.mean((2, 3)))\n```")
    server.script = [answer]
    req = MutationRequest(operator="crossover", constraints=DIGITS, parents=[
        ParentInfo(code=PARENT), ParentInfo(code=other)])
    result = LLMMutator(make_model()).mutate(req)
    assert result.mode == "full" and result.error is None
    assert "class Net(nn.Module)" in result.code and "def block" in result.code
    assert "Net1" not in result.code and "Net2" not in result.code
    assert valid_child(result.code)
    user = server.requests[0].body["messages"][1]["content"]
    assert "F.silu(self.conv2(x))" in user and "F.relu(self.conv2(x))" in user


def test_truncated_answer_is_reported(server, make_model):
    server.script = [Reply("```python\n" + PARENT[:260], finish_reason="length")]
    result = LLMMutator(make_model(), mode="full", max_repair_turns=0).mutate(request())
    assert result.code is None and "truncated" in result.error
    assert "generation cap" in result.notes


def test_init_and_nb201_cells(server, make_model):
    server.script = ["```python\n" + PARENT + "```",
                     "I suggest:\nARCH: |nor_conv_3x3~0|+|nor_conv_3x3~0|skip~1|+|none~0|none~1|"
                     "none~2|",
                     "ARCH: |nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|"
                     "nor_conv_1x1~1|avg_pool_3x3~2|"]
    mutator = LLMMutator(make_model())
    init = mutator.mutate(MutationRequest(operator="init", constraints=DIGITS))
    assert init.mode == "full" and valid_child(init.code)
    parent = ParentInfo(arch="|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|")
    cell = mutator.mutate(MutationRequest(operator="mutate", space="nb201", parents=[parent],
                                          seed=4))
    assert cell.arch == ("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|"
                         "nor_conv_1x1~1|avg_pool_3x3~2|")
    first_user = server.requests[1].body["messages"][1]["content"]
    assert parent.arch in first_user and "improve the above network" in first_user
    assert "unknown op 'skip~1'" in server.requests[2].body["messages"][-1]["content"]


def test_nb201_cells_on_consecutive_lines_are_not_glued(server, make_model):
    old = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    new = "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"
    server.script = [f"Current and proposed cell:\n{old}\n{new}\n"]
    parent = ParentInfo(arch=old)
    cell = LLMMutator(make_model(), max_repair_turns=0).mutate(
        MutationRequest(operator="mutate", space="nb201", parents=[parent], seed=1))
    assert cell.error is None and cell.arch == new and len(server.requests) == 1


def test_server_failure_becomes_result_error_and_budget_propagates(server, make_model):
    server.script = [Reply(status=500)] * 2
    result = LLMMutator(make_model(max_retries=1)).mutate(request())
    assert result.code is None and "LLM call failed" in result.error and "HTTP 500" in result.error
    server.script = [Reply(SE_EDIT, prompt_tokens=900, completion_tokens=200), SE_EDIT]
    mutator = LLMMutator(make_model(max_total_tokens=1000))
    assert mutator.mutate(request()).code is not None
    with pytest.raises(BudgetExceeded):
        mutator.mutate(request())
