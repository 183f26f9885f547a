"""Known networks as rendered candidates: what a search's front is measured against.

Each reference is written in the open space's ``ArchSpec`` (so it renders to the same kind of
standalone ``Net`` code and is scored by the same cascade), except the NAS-Bench-201 cell,
which renders through the NB201 macro skeleton.

- ``resnet20`` / ``resnet56``: He et al. 2016 (CIFAR ResNets): a 16-channel 3x3 stem, three
  stages of basic blocks at 16/32/64 channels, 3 (resp. 9) blocks per stage. ArchSpec caps a
  stage at 8 blocks, so ResNet-56's stages are written as 5 + 4 blocks (same network).
- ``mobilenetv2``: Sandler et al. 2018, CIFAR-sized: inverted residuals (expansion 6) at
  16/24/32/64/96 channels.
- ``nb201-best``: the NAS-Bench-201 cell with the best seed-averaged CIFAR-10 validation
  accuracy in the table (``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|
  nor_conv_3x3~1|nor_conv_3x3~2|``), C=16, N=5.
"""

from __future__ import annotations

from collections.abc import Callable

from archlore.search.protocol import Constraints
from archlore.search.spaces.open_spec import ArchSpec, Head, Stage, Stem

NB201_BEST = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
              "nor_conv_3x3~1|nor_conv_3x3~2|")


def _resnet(name: str, per_stage: list[int]) -> ArchSpec:
    stages = []
    for i, width in enumerate((16, 32, 64)):
        blocks = [per_stage[0]] if len(per_stage) == 1 else per_stage
        for k, depth in enumerate(blocks):
            stages.append(Stage(block="basic", channels=width, depth=depth,
                                stride=2 if i > 0 and k == 0 else 1))
    return ArchSpec(name=name, stem=Stem(channels=16), stages=stages)


def resnet20() -> ArchSpec:
    return _resnet("resnet20", [3])


def resnet56() -> ArchSpec:
    return _resnet("resnet56", [5, 4])


def mobilenetv2() -> ArchSpec:
    layout = [(16, 1, 1, 1.0), (24, 2, 1, 6.0), (32, 3, 2, 6.0), (64, 4, 2, 6.0), (96, 3, 1, 6.0)]
    return ArchSpec(name="mobilenetv2", act="relu6", stem=Stem(channels=32),
                    stages=[Stage(block="mbconv", channels=c, depth=d, stride=s, expand=e,
                                  skip=True) for c, d, s, e in layout],
                    head=Head(channels=320))


def _open(make: Callable[[], ArchSpec]) -> Callable[[Constraints], tuple[str, str]]:
    def render(constraints: Constraints) -> tuple[str, str]:
        from archlore.search.spaces.open import OpenSpace

        spec = make()
        return OpenSpace().render(spec, constraints), spec.to_json()

    return render


def _nb201_best(constraints: Constraints) -> tuple[str, str]:
    from archlore.search.spaces.nb201 import NB201Space

    return NB201Space().render(NB201_BEST, constraints), NB201_BEST


REFERENCES: dict[str, Callable[[Constraints], tuple[str, str]]] = {
    "resnet20": _open(resnet20),
    "resnet56": _open(resnet56),
    "mobilenetv2": _open(mobilenetv2),
    "nb201-best": _nb201_best,
}


def reference_code(name: str, constraints: Constraints | None = None) -> str:
    """Standalone ``Net`` source of a reference network."""
    try:
        make = REFERENCES[name]
    except KeyError:
        raise KeyError(f"unknown reference {name!r} (known: {', '.join(REFERENCES)})") from None
    return make(constraints or Constraints(dataset="cifar10", in_channels=3, num_classes=10,
                                           image_size=32))[0]
