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
