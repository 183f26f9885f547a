"""Structured-edit mode over real HTTP: JSON edits of the parent's ArchSpec / NB201 cell,
constrained by a JSON schema (response_format), validated, applied and rendered by archlore;
SWNAS's LLM step as a typed ``swnas`` request answered with ``space_edits``."""

from __future__ import annotations

import json

import numpy as np
from archlore.agent.llm.local_server import Reply
from archlore.agent.llm_mutator import LLMMutator
from archlore.agent.offline import OfflineMutator
from archlore.knowledge.schema import ArchEdit, Category, Idea
from archlore.search.protocol import Constraints, MutationRequest, ParentInfo
from archlore.search.spaces.open import OpenSpace
from archlore.search.spaces.open_spec import ArchSpec
from archlore.search.swnas.messages import MaskOp, StructuralSignals

from tests.agent.test_llm_mutator import valid_child

DIGITS = Constraints(dataset="digits", in_channels=1, num_classes=10, image_size=8,
                     max_mmacs=0.5)
SE_IDEA = Idea(id="squeeze-excitation", name="Squeeze-and-Excitation",
               category=Category.ATTENTION, description="Channel gating from global pooling.",
               edits=[ArchEdit(op="set", path="stages[*].attention", value="se")])
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"


def seed_parent(with_arch: bool = True) -> tuple[ArchSpec, ParentInfo]:
    spec = OpenSpace().seeds(DIGITS)[0]
    code = OpenSpace().render(spec, DIGITS)
    return spec, ParentInfo(candidate_id=1, code=code, arch=spec.to_json() if with_arch else None)


def edits(*items: dict) -> str:
    return json.dumps({"edits": list(items), "rationale": "as asked"})


def test_structured_idea_applies_json_edits_with_a_schema(server, make_model):
    spec, parent = seed_parent()
    server.script = [edits({"op": "set", "path": "stages[*].attention", "value": "se"})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="idea", parents=[parent], idea=SE_IDEA, constraints=DIGITS))
    assert res.status == "ok" and res.mode == "structured", res.error
    child = ArchSpec.from_json(res.arch)
    assert all(st.attention == "se" for st in child.stages) and valid_child(res.code)
    body = server.requests[0].body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    paths = fmt["json_schema"]["schema"]["properties"]["edits"]["items"]["properties"]["path"]
    assert "stages[*].attention" in paths["enum"] and "act" in paths["enum"]
    user = body["messages"][-1]["content"]
    assert '"stages[*].attention"' in user  # the idea's own edits are offered
    assert "attention=none" in user  # the grammar shows the parent's current values
    assert body["max_tokens"] <= 400  # generation cap sized to a JSON edit list
    assert res.prompt_tokens_est > 0 and "prompt ~" in res.notes


def test_structured_reads_the_spec_header_when_arch_is_missing(server, make_model):
    _, parent = seed_parent(with_arch=False)
    server.script = [edits({"op": "set", "path": "act", "value": "gelu"})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", parents=[parent], constraints=DIGITS, instruction="use GELU"))
    assert res.status == "ok" and ArchSpec.from_json(res.arch).act == "gelu"


def test_stale_spec_header_falls_back_to_code_mode(server, make_model):
    _, parent = seed_parent(with_arch=False)
    edited = parent.code.replace("nn.ReLU(inplace=True)", "nn.GELU()")  # header now stale
    stale = ParentInfo(candidate_id=2, code=edited)
    changed = edited.replace("nn.GELU()", "nn.SiLU()")
    server.script = ["```python\n" + changed + "```"]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", parents=[stale], constraints=DIGITS, instruction="use SiLU"))
    assert res.status == "ok" and res.mode in ("delta", "full")
    assert "no ArchSpec" in res.notes and "response_format" not in server.requests[0].body


def test_invalid_edit_is_sent_back_with_the_reason(server, make_model):
    _, parent = seed_parent()
    server.script = [edits({"op": "set", "path": "stages[0].attention", "value": "sparkles"}),
                     edits({"op": "set", "path": "stages[0].attention", "value": "eca"})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", parents=[parent], constraints=DIGITS))
    assert res.status == "ok" and ArchSpec.from_json(res.arch).stages[0].attention == "eca"
    retry = server.requests[1].body["messages"][-1]["content"]
    assert "sparkles" in retry and "not valid" in retry


def test_edits_that_change_nothing_are_a_no_op(server, make_model):
    _, parent = seed_parent()
    same = edits({"op": "set", "path": "act", "value": "relu"})  # the parent's own value
    server.script = [same, same]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", parents=[parent], constraints=DIGITS))
    assert res.status == "no_op" and res.code is None and len(server.requests) == 2
    assert "unchanged" in server.requests[1].body["messages"][-1]["content"]


def test_server_without_json_schema_falls_back_to_validate_and_retry(server, make_model):
    _, parent = seed_parent()

    def responder(body):
        if "response_format" in body:
            return Reply("response_format json_schema is not supported", status=400)
        return "Sure:\n```json\n" + edits({"op": "scale", "path": "stem.channels",
                                           "value": 2}) + "\n```"

    server.responder = responder
    mutator = LLMMutator(make_model(), mode="structured")
    res = mutator.mutate(MutationRequest(operator="mutate", parents=[parent], constraints=DIGITS))
    assert res.status == "ok" and ArchSpec.from_json(res.arch).stem.channels == 32
    assert mutator.schema_supported is False and "rejected response_format" in res.notes
    n = len(server.requests)
    mutator.mutate(MutationRequest(operator="mutate", parents=[parent], constraints=DIGITS))
    assert len(server.requests) == n + 1  # no more rejected attempts once known


def test_nb201_structured_cell_changes(server, make_model):
    server.script = [json.dumps({"changes": [{"edge": "3<-0", "op": "nor_conv_3x3"}],
                                 "rationale": "more capacity"})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", space="nb201", parents=[ParentInfo(arch=CELL)], constraints=DIGITS))
    assert res.status == "ok" and res.mode == "structured"
    assert res.arch == CELL.replace("skip_connect~0", "nor_conv_3x3~0")
    schema = server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert "3<-2" in schema["properties"]["changes"]["items"]["properties"]["edge"]["enum"]


def test_nb201_structured_echo_is_a_no_op(server, make_model):
    same = json.dumps({"changes": [{"edge": "1<-0", "op": "nor_conv_3x3"}], "rationale": ""})
    server.script = [same, same]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", space="nb201", parents=[ParentInfo(arch=CELL)], constraints=DIGITS))
    assert res.status == "no_op" and res.arch is None



def test_nb201_structured_avoids_cells_the_run_already_scored(server, make_model):
    scored = CELL.replace("skip_connect~0", "nor_conv_3x3~0")  # 3<-0 -> conv3x3, scored
    other = CELL.replace("avg_pool_3x3~2", "nor_conv_3x3~2")
    server.script = [json.dumps({"changes": [{"edge": "3<-0", "op": "nor_conv_3x3"}]}),
                     json.dumps({"changes": [{"edge": "3<-2", "op": "nor_conv_3x3"}]})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", space="nb201", parents=[ParentInfo(arch=CELL)], constraints=DIGITS,
        avoid=[scored]))
    assert res.status == "ok" and res.arch == other
    first = server.requests[0].body["messages"][-1]["content"]
    assert "Already evaluated in this run" in first and "3<-0=nor_conv_3x3" in first
    assert "already evaluated" in server.requests[1].body["messages"][-1]["content"]


def test_nb201_a_second_scored_answer_goes_on_to_the_engine(server, make_model):
    scored = CELL.replace("skip_connect~0", "nor_conv_3x3~0")
    again = json.dumps({"changes": [{"edge": "3<-0", "op": "nor_conv_3x3"}]})
    server.script = [again, again]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="mutate", space="nb201", parents=[ParentInfo(arch=CELL)], constraints=DIGITS,
        avoid=[scored]))
    assert res.status == "ok" and res.arch == scored and len(server.requests) == 2


def test_nb201_arch_answer_avoids_scored_cells(server, make_model):
    scored = CELL.replace("skip_connect~0", "nor_conv_3x3~0")
    other = CELL.replace("avg_pool_3x3~2", "nor_conv_3x3~2")
    server.script = [f"ARCH: {scored}", f"ARCH: {other}"]
    res = LLMMutator(make_model(), mode="full").mutate(MutationRequest(
        operator="mutate", space="nb201", parents=[ParentInfo(arch=CELL)], constraints=DIGITS,
        avoid=[scored]))
    assert res.status == "ok" and res.arch == other and len(server.requests) == 2
    assert "3<-0=nor_conv_3x3" in server.requests[0].body["messages"][-1]["content"]


def signals() -> StructuralSignals:
    alpha = np.full((6, 5), 0.1)
    alpha[:, 1] = 0.6  # skip_connect on top everywhere: collapse
    imp = np.full((6, 5), 0.01)
    return StructuralSignals(epoch=2, window=2, alpha=alpha.tolist(),
                             alpha_trend=np.zeros((6, 5)).tolist(), op_importance=imp.tolist(),
                             node_importance=[1.0, 0.6, 0.7, 1.0], node_trend=[0, 0, 0, 0],
                             masked=[[False] * 5 for _ in range(6)])


def test_swnas_step_is_a_typed_request_answered_with_space_edits(server, make_model):
    server.script = [json.dumps({"edits": [
        {"kind": "mask_op", "edge": "2<-1", "op": "skip_connect", "reason": "collapse"},
        {"kind": "add_node", "after": 1, "op": "nor_conv_3x3"}], "rationale": "skip collapse"})]
    res = LLMMutator(make_model(), mode="delta").mutate(MutationRequest(
        operator="swnas", space="nb201", signals=signals()))
    assert res.status == "ok" and res.space_edits == [
        MaskOp(edge="2<-1", op="skip_connect", reason="collapse")]
    assert "add_node" in res.notes and "fixed" in res.notes  # rejected with the reason
    body = server.requests[0].body
    assert body["response_format"]["json_schema"]["name"] == "advisor_answer"
    assert "SWNAS signals after epoch 2" in body["messages"][-1]["content"]
    # the computed facts a small model cannot read off the table
    assert "skip_connect has the largest weight on 6 of 6 edges" in body["messages"][-1]["content"]


def test_offline_mutator_answers_the_swnas_step_with_the_rules():
    res = OfflineMutator().mutate(MutationRequest(operator="swnas", space="nb201",
                                                  signals=signals()))
    assert res.status == "ok" and res.space_edits
    assert all(e.kind in ("mask_op", "prefer_op") for e in res.space_edits)


def open_signals() -> StructuralSignals:
    from archlore.search.swnas.open_messages import OPEN_BLOCKS

    b = len(OPEN_BLOCKS)
    imp = np.zeros((2, b))
    imp[1, 4] = 0.05  # dwsep measures best on the important stage 2
    return StructuralSignals(space="open", epoch=2, window=2, ops=list(OPEN_BLOCKS),
                             edges=["stage1", "stage2"], alpha=np.full((2, b), 1 / b).tolist(),
                             alpha_trend=np.zeros((2, b)).tolist(), op_importance=imp.tolist(),
                             node_importance=[0.3, 1.0], node_trend=[0.0, 0.1],
                             masked=[[False] * b for _ in range(2)], added=[False, False],
                             add_left=1)


def test_open_space_swnas_step_adds_a_node_through_the_llm(server, make_model):
    server.script = [json.dumps({"edits": [
        {"kind": "add_node", "after": 2, "op": "dwsep", "reason": "capacity"},
        {"kind": "prefer_block", "stage": 2, "block": "dwsep", "strength": 2.0},
        {"kind": "mask_block", "stage": 5, "block": "basic"}], "rationale": "deeper"})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="swnas", space="open", signals=open_signals()))
    assert res.status == "ok" and [e.kind for e in res.space_edits] == ["add_node",
                                                                        "prefer_block"]
    assert "mask_block" in res.notes  # stage 5 rejected with its reason
    body = server.requests[0].body
    schema = json.dumps(body["response_format"]["json_schema"]["schema"])
    assert "add_node" in schema and "mask_block" in schema and "mask_op" not in schema
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    assert "chain of stages" in system and "stage2" in user and "You may add 1 node" in user
    offline = OfflineMutator().mutate(MutationRequest(operator="swnas", space="open",
                                                      signals=open_signals()))
    assert offline.status == "ok"
    assert ("add_node", 2, "dwsep") in [(e.kind, getattr(e, "after", None), getattr(e, "op", ""))
                                        for e in offline.space_edits]


def test_swnas_strategy_advisor_goes_through_the_protocol():
    from archlore.search.swnas.strategy import _mutator_advisor

    advisor = _mutator_advisor(OfflineMutator(), seed=0)
    assert advisor(signals()) == OfflineMutator().mutate(MutationRequest(
        operator="swnas", space="nb201", signals=signals())).space_edits


def test_structured_crossover_edits_parent_a_towards_parent_b(server, make_model):
    seeds = OpenSpace().seeds(DIGITS)
    a, b = seeds[0], seeds[3]
    pa = ParentInfo(candidate_id=1, code=OpenSpace().render(a, DIGITS), arch=a.to_json())
    pb = ParentInfo(candidate_id=2, code=OpenSpace().render(b, DIGITS), arch=b.to_json())
    server.script = [edits({"op": "set", "path": "act", "value": b.act})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="crossover", parents=[pa, pb], constraints=DIGITS))
    assert res.status == "ok" and res.mode == "structured"
    assert ArchSpec.from_json(res.arch).act == b.act
    user = server.requests[0].body["messages"][-1]["content"]
    assert "Parent A (edit this one)" in user and "Parent B" in user


def test_swnas_edit_without_kind_is_retried_with_a_precise_hint(server, make_model):
    server.script = [json.dumps({"edits": [{"edge": "2<-1", "op": "skip_connect"}]}),
                     json.dumps({"edits": [{"kind": "mask_op", "edge": "2<-1",
                                            "op": "skip_connect"}]})]
    res = LLMMutator(make_model(), mode="structured").mutate(MutationRequest(
        operator="swnas", space="nb201", signals=signals()))
    assert res.space_edits == [MaskOp(edge="2<-1", op="skip_connect")]
    retry = server.requests[1].body["messages"][-1]["content"]
    assert 'has no "kind"' in retry and '"kind": "mask_op"' in retry
    schema = server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert all("kind" in d["required"] for d in schema["$defs"].values() if "kind" in d["properties"])
