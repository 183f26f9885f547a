"""The open space: ArchSpec edits, rendering (policy + shapes), MACs estimate, moves, crossover."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from archlore.evaluator.cascade import build_model, check_shape, count_macs
from archlore.evaluator.policy import check_source
from archlore.knowledge.schema import ArchEdit
from archlore.search.protocol import Constraints
from archlore.search.registry import SPACES
from archlore.search.spaces.open import (
    ArchSpec,
    Head,
    Init,
    OpenSpace,
    Stage,
    Stem,
    apply_edits,
    measure,
    render,
)

DIGITS = Constraints()
CIFAR = Constraints(dataset="cifar10", in_channels=3, image_size=32)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny nets: one thread avoids oversubscription on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _shape_ok(spec: ArchSpec, c: Constraints) -> torch.nn.Module:
    code = render(spec)
    assert check_source(code) == [], check_source(code)[:3]
    model = build_model(code, c.num_classes, c.in_channels)
    check_shape(model, (c.in_channels, c.image_size, c.image_size), c.num_classes, CPU)
    return model


def E(op: str, path: str = "", value=None) -> ArchEdit:  # noqa: N802 - short helper
    return ArchEdit(op=op, path=path, value=value)


# -- edits ------------------------------------------------------------------------------------

def test_edit_paths_set_scale_add_and_stage_ops():
    base = ArchSpec(stages=[Stage(channels=16), Stage(channels=32, stride=2, depth=2)])
    new = apply_edits(base, [
        E("set", "act", "gelu"),
        E("set", "stages[*].block", "bottleneck"),
        E("scale", "stages[-1].depth", 2),
        E("add", "head.dropout", 0.25),
        E("scale", "stem.channels", 1.3),
        E("set", "stages[1:].attention", "cbam"),
        E("set", "init.scheme", "kaiming"),
        E("append_stage", "", {"channels": 64, "stride": 2}),
        E("remove_stage", "", 0),
    ])
    assert new.act == "gelu"
    assert [s.block for s in new.stages] == ["bottleneck", "bottleneck"]  # the appended one copies
    assert [s.depth for s in new.stages] == [4, 4]
    assert [s.channels for s in new.stages] == [32, 64]
    assert [s.attention for s in new.stages] == ["cbam", "cbam"]
    assert new.head.dropout == pytest.approx(0.25)
    assert new.stem.channels == 20  # round(16 * 1.3) -> multiple of 4
    assert new.init.scheme == "kaiming"
    # the input spec is untouched
    assert base.act == "relu" and len(base.stages) == 2 and base.stages[1].depth == 2


def test_scale_and_add_clamp_into_bounds():
    spec = apply_edits(ArchSpec(), [E("scale", "stages[*].depth", 100), E("add", "drop_path", 5),
                                    E("scale", "stem.channels", 0.01)])
    assert spec.stages[0].depth == 8 and spec.drop_path == 0.5 and spec.stem.channels == 4


def test_numbers_written_as_strings_are_numbers():
    """A model's JSON answer often quotes numbers ("4096"): that is the number, not an error."""
    spec = apply_edits(ArchSpec(), [E("add", "head.hidden", "64"), E("scale", "width", "1.5")])
    assert spec.head.hidden == ArchSpec().head.hidden + 64 and spec.width == 1.5


@pytest.mark.parametrize("edit, message", [
    (E("set", "actt", "gelu"), "unknown field 'actt'"),
    (E("set", "act", "swishy"), "invalid value for 'act'"),
    (E("scale", "act", 2), "cannot scale non-numeric"),
    (E("scale", "width", "big"), "needs a number"),
    (E("add", "drop_path", "nan"), "needs a number"),
    (E("set", "stages[5].depth", 2), "out of range"),
    (E("set", "stages[x].depth", 2), "bad stage index"),
    (E("set", "stem[0].channels", 8), "only 'stages' can be indexed"),
    (E("set", "stages[*].depth", 99), "less than or equal to 8"),
    (E("set", "stages[0]", 3), "only 'stages' can be indexed"),
    (E("set", "stages[5:].kernel", 5), "selects no stage"),
    (E("set", "stages[1:].bogus", 5), "selects no stage"),
    (E("set", "act.kind", 3), "has no sub-fields"),
    (E("set", "", 3), "path is empty"),
    (E("remove_stage", "", 0), "cannot remove the only stage"),
    (E("append_stage", "", 5), "needs a dict"),
    (E("append_stage", "", {"blok": "basic"}), "invalid value"),
])
def test_bad_edits_raise_clear_errors(edit, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        apply_edits(ArchSpec(), [edit])


# -- rendering --------------------------------------------------------------------------------

BLOCKS = ["plain", "basic", "bottleneck", "mbconv", "fused", "convnext", "dwsep", "dense", "inception"]
ATTENTION = ["none", "se", "eca", "cbam", "mhsa"]


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_and_attention_renders_valid_code(block):
    for attention, (norm, act, down) in zip(
            ATTENTION, itertools.cycle([("bn", "relu", "stride"), ("gn", "gelu", "maxpool"),
                                        ("ln", "mish", "avgpool"), ("none", "hardswish", "blur"),
                                        ("bn", "elu", "blur")]), strict=False):
        spec = ArchSpec(
            stem=Stem(channels=8), norm=norm, act=act, downsample=down, drop_path=0.1,
            stages=[Stage(block=block, channels=8, depth=2, groups=2, shuffle=True, attention=attention,
                          expand=2.0),
                    Stage(block=block, channels=12, depth=1, stride=2, kernel=5, attention=attention,
                          skip=False),
                    Stage(block=block, channels=16, stride=2, attention=attention)],
            head=Head(channels=32, hidden=16, pool="avgmax", dropout=0.1),
            init=Init(scheme="kaiming", zero_init_residual=True, layer_scale=1e-6))
        for c in (DIGITS, Constraints(in_channels=2, image_size=8, num_classes=3)):
            model = _shape_ok(spec, c)
        model.train()  # training-mode forward + backward (drop path, batch statistics)
        model(torch.randn(3, 2, 8, 8)).sum().backward()


def test_three_downsamplings_reach_1x1_on_8x8_inputs():
    spec = ArchSpec(stem=Stem(stride=2), downsample="maxpool",
                    stages=[Stage(stride=2), Stage(stride=2), Stage(stride=2, attention="mhsa")])
    _shape_ok(spec, DIGITS)


@pytest.mark.parametrize("block", BLOCKS)
def test_even_stage_kernels_keep_residual_and_dense_shapes(block):
    # 'same' padding k // 2 grows the map by one for even k; residual adds / concats then broke
    spec = ArchSpec(stages=[Stage(block=block, kernel=4, depth=2),
                            Stage(block=block, kernel=2, stride=2, channels=16)])
    for c in (DIGITS, CIFAR):
        model = _shape_ok(spec, c)
        assert OpenSpace().estimate_macs(spec, c) == count_macs(
            model, (c.in_channels, c.image_size, c.image_size))


def test_spec_round_trips_through_code():
    rng = np.random.default_rng(0)
    space = OpenSpace()
    specs = space.seeds(DIGITS) + [space.random(rng, CIFAR) for _ in range(5)]
    for spec in specs:
        assert ArchSpec.from_code(render(spec)) == spec
    assert ArchSpec.from_code("import torch\nclass Net: pass\n") is None
    assert ArchSpec.from_code("# archlore-spec: {not json}\n") is None


def test_a_hostile_name_cannot_break_out_of_the_docstring():
    # measure() execs rendered code in-process: the free-text name must stay inert text
    spec = ArchSpec(name='x"""\nimport os\nos.environ["ARCHLORE_PWNED"] = "1"\n"""',
                    stages=[Stage(channels=8)])
    code = render(spec)
    assert check_source(code) == []
    measure(spec, DIGITS)
    import os

    assert "ARCHLORE_PWNED" not in os.environ
    assert ArchSpec.from_code(code) == spec
    _shape_ok(spec, DIGITS)


@pytest.mark.parametrize("norm", ["bn", "gn", "ln"])
def test_zero_init_residual_zeroes_the_branch_norm_for_every_norm(norm):
    # with norm="ln" the flag used to be a silent no-op (only BN/GN were looked for)
    spec = ArchSpec(norm=norm, init=Init(zero_init_residual=True),
                    stages=[Stage(block="basic", channels=8, attention="mhsa")])
    model = _shape_ok(spec, DIGITS)
    residual = model.stage1[0]
    branch_norms = [m for m in residual.body.modules()
                    if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm))]
    attention_norm = residual.body[-1].norm  # mhsa's own pre-norm stays as initialised
    assert branch_norms[-1] is attention_norm
    assert torch.count_nonzero(branch_norms[-2].weight) == 0
    assert torch.count_nonzero(attention_norm.weight) == attention_norm.weight.numel()


def test_random_specs_pass_policy_and_shape_and_caps():
    space, rng = OpenSpace(), np.random.default_rng(7)
    for i in range(12):
        c = (DIGITS if i % 2 else CIFAR).model_copy(update={"max_mmacs": 2.0})
        spec = space.random(rng, c)
        model = _shape_ok(spec, c)
        assert count_macs(model, (c.in_channels, c.image_size, c.image_size)) <= 2e6


def test_estimate_matches_the_evaluators_count():
    space = OpenSpace()
    for c in (DIGITS, CIFAR):
        for spec in space.seeds(c) + [ArchSpec(stages=[Stage(attention="mhsa"), Stage(stride=2)])]:
            code = render(spec)
            model = build_model(code, c.num_classes, c.in_channels)
            assert space.estimate_macs(spec, c) == count_macs(model, (c.in_channels, c.image_size,
                                                                      c.image_size))
            assert space.estimate_params(spec, c) == sum(p.numel() for p in model.parameters())


def test_estimate_works_for_groupnorm_with_one_channel_groups_on_1x1_maps():
    # the evaluator counts on a batch of 2; a batch of 1 made GroupNorm raise on 1x1 maps
    spec = ArchSpec(norm="gn", stem=Stem(stride=2),
                    stages=[Stage(stride=2, channels=8), Stage(stride=2, channels=8)])
    model = _shape_ok(spec, DIGITS)
    assert OpenSpace().estimate_macs(spec, DIGITS) == count_macs(model, (1, 8, 8))


def _perturbed(spec: ArchSpec, rng: np.random.Generator) -> ArchSpec:
    """``spec`` with edge-case field values: odd/even kernels, groups that do not divide,
    tiny channel counts, attention on small maps, resolution < 1, patchify stems."""
    d = spec.model_dump()
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731 - tiny local helper
    for st in d["stages"]:
        st.update(groups=pick([1, 3, 8, 64]), shuffle=bool(rng.random() < 0.3),
                  attention=pick(["none", "se", "eca", "cbam", "mhsa"]),
                  expand=pick([0.125, 0.3, 1.0, 3.0]), kernel=pick([1, 2, 3, 4, 7]),
                  channels=pick([4, 5, 13, st["channels"]]), skip=bool(rng.random() < 0.7))
    k = pick([1, 2, 3, 4])
    d.update(width=pick([0.25, 0.3, 1.0, 1.3]), resolution=pick([0.5, 0.6, 1.0, 1.5]),
             norm=pick(["bn", "gn", "ln", "none"]),
             downsample=pick(["stride", "maxpool", "avgpool", "blur"]),
             stem={"channels": pick([4, 5, 16]), "kernel": k, "stride": pick([1, k]),
                   "depth": pick([1, 2])},
             head={"channels": pick([0, 5]), "hidden": pick([0, 3]), "pool": pick(["avg", "avgmax"]),
                   "dropout": 0.1},
             init={"scheme": "kaiming", "zero_init_residual": True, "layer_scale": pick([0.0, 0.1])})
    return ArchSpec.model_validate(d)


def test_perturbed_and_idea_edited_specs_render_run_and_match_the_macs_count():
    from archlore.corpora import load_builtin_ideas

    space, rng = OpenSpace(), np.random.default_rng(11)
    ideas = [i for i in load_builtin_ideas() if i.edits]
    for t in range(16):
        c = DIGITS if t % 2 else CIFAR
        spec = _perturbed(space.random(rng, c), rng)
        try:
            spec = apply_edits(spec, ideas[int(rng.integers(len(ideas)))].edits)
        except ValueError:
            pass  # an idea that does not apply to this spec is rejected clearly; keep the spec
        for shape_c in (DIGITS, CIFAR):
            model = _shape_ok(spec, shape_c)
            shape = (shape_c.in_channels, shape_c.image_size, shape_c.image_size)
            assert space.estimate_macs(spec, shape_c) == count_macs(model, shape), spec.to_json()


# -- space ------------------------------------------------------------------------------------

def test_registered_and_seeds_are_small_and_diverse():
    space = SPACES.get("open")()
    digits = space.seeds(DIGITS)
    assert len({s.key() for s in digits}) == len(digits) >= 3
    assert len({s.stages[0].block for s in digits}) >= 3
    for spec in digits:
        assert 3_000 <= space.estimate_macs(spec, DIGITS) <= 2_000_000
        _shape_ok(spec, DIGITS)
    cifar = space.seeds(CIFAR)
    assert all(len(s.stages) == 4 for s in cifar)
    capped = space.seeds(DIGITS.model_copy(update={"max_mmacs": 0.3}))
    assert all(space.estimate_macs(s, DIGITS) <= 0.3e6 for s in capped)


def test_describe_reports_width_depth_and_cost():
    space = OpenSpace()
    spec = ArchSpec(stages=[Stage(channels=16, depth=2), Stage(channels=32, depth=2, stride=2)])
    d = space.describe(spec, DIGITS)
    assert d["blocks"] == 4 and d["stages"] == 2
    assert d["width_depth_ratio"] == pytest.approx(24 / 4)
    assert d["macs"] == space.estimate_macs(spec, DIGITS) > 0
    assert "macs" not in space.describe(spec)


def test_crossover_takes_fields_from_the_parents_and_is_deterministic():
    space = OpenSpace()
    a, b = space.seeds(DIGITS)[1], space.seeds(DIGITS)[3]
    children = [space.crossover(a, b, np.random.default_rng(s)) for s in range(10)]
    again = [space.crossover(a, b, np.random.default_rng(s)) for s in range(10)]
    assert children == again
    parent_stages = [s.model_dump() for s in a.stages + b.stages]
    for child in children:
        assert all(s.model_dump() in parent_stages for s in child.stages)
        assert child.act in (a.act, b.act) and child.norm in (a.norm, b.norm)
        _shape_ok(child, DIGITS)
    assert len({c.key() for c in children} - {a.key(), b.key()}) >= 3


def test_shrink_cuts_and_grow_adds_within_the_cap():
    space = OpenSpace()
    for spec in space.seeds(DIGITS):
        macs = space.estimate_macs(spec, DIGITS)
        assert space.estimate_macs(space.shrink(spec, DIGITS), DIGITS) < macs
        capped = DIGITS.model_copy(update={"max_mmacs": macs * 1.5 / 1e6})
        for seed in range(3):
            grown = space.grow(spec, capped, np.random.default_rng(seed))
            assert macs < space.estimate_macs(grown, DIGITS) <= macs * 1.5 or \
                space.estimate_params(grown, DIGITS) > space.estimate_params(spec, DIGITS)


def test_fit_reaches_a_cap_or_says_why_not():
    space = OpenSpace()
    big = ArchSpec(stages=[Stage(channels=256, depth=4), Stage(channels=512, depth=4, stride=2)])
    c = CIFAR.model_copy(update={"max_mmacs": 1.0, "max_params": 50_000})
    small, moves = space.fit_steps(big, c)
    macs, params = measure(small, c)
    assert moves and macs <= 1e6 and params <= 50_000
    with pytest.raises(ValueError, match="cannot fit caps"):
        space.fit(big, CIFAR.model_copy(update={"max_mmacs": 0.0001}))
