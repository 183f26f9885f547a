"""Rendering NB201 cells to candidate code: policy, shapes, MACs against the table."""

from __future__ import annotations

import pytest
import torch
from archlore.evaluator.cascade import build_model, check_shape, count_macs, count_params
from archlore.evaluator.policy import check_source
from archlore.search.spaces.nb201 import NB201Space
from archlore.search.spaces.nb201_table import NB201Table

from tests.search.nb201_fixtures import table_path

ARCHS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]


@pytest.mark.parametrize("arch", ARCHS)
def test_rendered_code_passes_policy_and_shape(arch):
    code = NB201Space(cells_per_stage=1).render(arch)
    assert check_source(code) == []
    model = build_model(code, num_classes=7, in_channels=1)
    check_shape(model, (1, 16, 16), 7, torch.device("cpu"))  # raises on a wrong shape


@pytest.mark.parametrize("dataset, shape, classes", [
    ("cifar10", (3, 32, 32), 10), ("ImageNet16-120", (3, 16, 16), 120)])
@pytest.mark.parametrize("arch", ARCHS[:2])
def test_full_network_macs_and_params_match_the_table(arch, dataset, shape, classes):
    entry = NB201Table(table_path(), dataset)[arch]
    model = build_model(NB201Space().render(arch), num_classes=classes, in_channels=3)
    macs = count_macs(model, shape)
    # the table counts the linear layer's bias too; pooling is free in both
    assert macs / 1e6 == pytest.approx(entry.flops_M, rel=0.01)
    assert count_params(model) / 1e6 == pytest.approx(entry.params_M, rel=1e-4)
    assert NB201Space().macs(arch, shape[1], classes) == round(entry.flops_M * 1e6)


def test_cells_per_stage_scales_compute():
    arch = ARCHS[1]
    small, big = NB201Space(cells_per_stage=1), NB201Space(cells_per_stage=5)
    assert small.macs(arch) < big.macs(arch)
    assert "CELLS_PER_STAGE = 1" in small.render(arch)
    with pytest.raises(ValueError, match="cells_per_stage"):
        NB201Space().render(arch, cells_per_stage=0)


@pytest.mark.parametrize("size", [6, 10])
def test_odd_maps_keep_the_reduction_shortcut_in_step(size):
    # 6 -> 3 -> 2 and 10 -> 5 -> 3: a floor-mode shortcut pool gave 1 and 2 rows (broadcast or crash)
    space = NB201Space(cells_per_stage=1)
    model = build_model(space.render(ARCHS[1]), num_classes=10, in_channels=1)
    check_shape(model, (1, size, size), 10, torch.device("cpu"))
    # the analytic count includes the linear bias (the table's convention), the evaluator's not
    assert count_macs(model, (1, size, size)) + 10 == space.macs(ARCHS[1], size, 10, 1)
