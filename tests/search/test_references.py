"""Reference networks render to valid candidates with the published sizes."""

from __future__ import annotations

import pytest
import torch
from archlore.search.spaces.references import REFERENCES, reference_code
from torch.utils.flop_counter import FlopCounterMode

# published sizes (CIFAR-10): ResNet-20 0.27 M params / 41 M MACs, ResNet-56 0.85 M / 125 M
EXPECTED = {"resnet20": (0.27e6, 41e6), "resnet56": (0.85e6, 126e6)}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_renders_passes_policy_and_has_its_size(name):
    from archlore.evaluator.policy import check_source

    code = reference_code(name)
    assert not check_source(code)
    ns: dict = {}
    exec(compile(code, name, "exec"), ns)
    net = ns["Net"](num_classes=10, in_channels=3).eval()
    params = sum(p.numel() for p in net.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)
    macs = counter.get_total_flops() / 2 / 2
    if name in EXPECTED:
        p, m = EXPECTED[name]
        assert abs(params - p) / p < 0.03 and abs(macs - m) / m < 0.03


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_runs_at_16px(name):
    """The CIFAR benchmark's CPU recipe trains them on 16x16 images (global pooling head)."""
    from archlore.search.protocol import Constraints

    code = reference_code(name, Constraints(dataset="x", in_channels=3, num_classes=10,
                                            image_size=16))
    ns: dict = {}
    exec(compile(code, name, "exec"), ns)
    net = ns["Net"](num_classes=10, in_channels=3).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_unknown_reference_names_the_known_ones():
    with pytest.raises(KeyError, match="resnet20"):
        reference_code("vgg16")
