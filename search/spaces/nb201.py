"""The NAS-Bench-201 cell space: 6 edges x 5 operations, 15,625 cells.

A cell is a 4-node DAG; node ``i`` sums ``op(node j)`` over ``j < i``. The canonical string
(NAS-Bench-201's own) lists the edges by target node::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
     1<-0    2<-0 2<-1   3<-0 3<-1 3<-2

Here a cell is a tuple of 6 op names in that edge order (:data:`EDGES`). The space object
(:class:`NB201Space`, registered as ``"nb201"``) samples, mutates, crosses over, describes and
renders cells; the table and its evaluation backend live in :mod:`search.spaces.nb201_table`,
the PyTorch rendering in :mod:`search.spaces.nb201_render`.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from archlore.search.registry import register_space

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to_node, from_node) for each of the 6 edges, in canonical string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)
NUM_ARCHS = len(OPS) ** NUM_EDGES  # 15,625

Cell = tuple[str, ...]


class ArchError(ValueError):
    """An arch string that is not a NAS-Bench-201 cell."""


def parse_arch(arch: str) -> Cell:
    """``'|op~0|+|op~0|op~1|+|...|'`` -> 6-tuple of op names (canonical edge order).

    Raises ArchError naming what is wrong (unknown op, wrong source node, wrong edge count).
    """
    if not isinstance(arch, str):
        raise ArchError(f"arch must be a string, got {type(arch).__name__}")
    text = arch.strip()
    nodes = text.split("+")
    if len(nodes) != 3:
        raise ArchError(f"expected 3 '+'-separated nodes in {arch!r}, got {len(nodes)}")
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        parts = [p.strip() for p in node.strip().strip("|").split("|")]
        if len(parts) != target:
            raise ArchError(f"node {target} of {arch!r} needs {target} inputs, got {len(parts)}")
        for source, part in enumerate(parts):
            op, sep, src = part.partition("~")
            if not sep or op not in OPS:
                raise ArchError(f"unknown op {part!r} in {arch!r} (ops: {', '.join(OPS)})")
            if src != str(source):
                raise ArchError(f"edge {part!r} of node {target} must read node {source}")
            ops.append(op)
    return tuple(ops)


def format_arch(cell: Cell | list[str]) -> str:
    """6 op names (canonical edge order) -> canonical arch string."""
    cell = tuple(cell)
    if len(cell) != NUM_EDGES or any(op not in OPS for op in cell):
        raise ArchError(f"a cell is {NUM_EDGES} ops from {OPS}, got {cell!r}")
    nodes, k = [], 0
    for target in range(1, 4):
        nodes.append("|" + "|".join(f"{cell[k + j]}~{j}" for j in range(target)) + "|")
        k += target
    return "+".join(nodes)


def canonical(arch: str) -> str:
    """Normalise an arch string (whitespace) or raise ArchError."""
    return format_arch(parse_arch(arch))


def all_archs() -> list[str]:
    """All 15,625 canonical arch strings, in op-index lexicographic order."""
    return [format_arch(c) for c in itertools.product(OPS, repeat=NUM_EDGES)]


def random_cell(rng: np.random.Generator) -> Cell:
    return tuple(OPS[i] for i in rng.integers(0, len(OPS), size=NUM_EDGES))


def mutate_cell(cell: Cell, rng: np.random.Generator) -> Cell:
    """Change the op of one uniformly chosen edge to a different op (REA's mutation)."""
    edge = int(rng.integers(NUM_EDGES))
    choices = [op for op in OPS if op != cell[edge]]
    out = list(cell)
    out[edge] = choices[int(rng.integers(len(choices)))]
    return tuple(out)


def crossover_cells(a: Cell, b: Cell, rng: np.random.Generator) -> Cell:
    """Uniform crossover: each edge's op from ``a`` or ``b`` with probability 1/2."""
    take_a = rng.random(NUM_EDGES) < 0.5
    return tuple(x if t else y for x, y, t in zip(a, b, take_a, strict=True))


def neighbours(cell: Cell) -> list[Cell]:
    """All 24 cells one edge-op change away."""
    out = []
    for e in range(NUM_EDGES):
        for op in OPS:
            if op != cell[e]:
                out.append(cell[:e] + (op,) + cell[e + 1:])
    return out


def live_edges(cell: Cell) -> list[bool]:
    """Whether each edge lies on a path from the input (node 0) to the output (node 3)
    through non-``none`` edges: only those influence the cell's output."""
    reach_in = {0}
    for (i, j), op in zip(EDGES, cell, strict=True):
        if op != "none" and j in reach_in:
            reach_in.add(i)
    reach_out = {3}
    for (i, j), op in reversed(list(zip(EDGES, cell, strict=True))):
        if op != "none" and i in reach_out:
            reach_out.add(j)
    return [op != "none" and j in reach_in and i in reach_out for (i, j), op in zip(EDGES, cell, strict=True)]


def connected(cell: Cell) -> bool:
    """True when some path of non-``none`` edges links the input to the output."""
    return any(live_edges(cell))


def describe_cell(cell: Cell) -> dict[str, float]:
    """Structure-only descriptors (no table access), used by LLMatic's network archive and
    by novelty/diversity views: counts per op, live convolutions, and a width-to-depth ratio.

    ``depth``: the longest input->output path counted in parametric (conv) layers, plus 1;
    ``width``: the number of live edges entering the output node (parallel branches).
    """
    live = live_edges(cell)
    # longest path in convs over live edges
    longest = {0: 0}
    for (i, j), op, ok in zip(EDGES, cell, live, strict=True):
        if ok and j in longest:
            step = 1 if op.startswith("nor_conv") else 0
            longest[i] = max(longest.get(i, 0), longest[j] + step)
    depth = longest.get(3, 0) + 1
    width = sum(1 for (i, _), ok in zip(EDGES, live, strict=True) if ok and i == 3)
    counts = {op: sum(1 for o in cell if o == op) for op in OPS}
    return {
        **{f"n_{op}": float(n) for op, n in counts.items()},
        "live_convs": float(sum(1 for o, ok in zip(cell, live, strict=True) if ok and o.startswith("nor_conv"))),
        "depth": float(depth),
        "width": float(width),
        "width_to_depth": width / depth,
    }


def cell_macs(cell: Cell, image_size: int = 32, num_classes: int = 10, in_channels: int = 3,
               cells_per_stage: int = 5) -> int:
    """MACs per image of the whole NB201 network, analytically (conv + linear, incl. the linear
    bias as the benchmark does; pooling, BN and additions not counted -- the table's
    ``flops_M`` convention). Depends only on the cell's structure, never on the table."""
    widths = (16, 32, 64)
    conv = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}
    size = image_size
    total = 9 * in_channels * widths[0] * size * size  # stem
    per_cell_k = sum(conv.get(op, 0) for op in cell)
    for stage, c in enumerate(widths):
        if stage > 0:
            c_in, size = widths[stage - 1], (size + 1) // 2
            total += (9 * c_in * c + 9 * c * c + c_in * c) * size * size  # residual reduction
        total += cells_per_stage * per_cell_k * c * c * size * size
    return total + (widths[-1] + 1) * num_classes


# Classic designs written as NB201 cells (edge order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2): the
# starting points a designer would try first. Structure only -- chosen from the papers' designs,
# not from the benchmark's answers -- and the same for every dataset.
CLASSIC_CELLS: dict[str, Cell] = {
    # VGG: a plain chain of 3x3 convolutions
    "plain-chain": ("nor_conv_3x3", "none", "nor_conv_3x3", "none", "none", "nor_conv_3x3"),
    # ResNet basic block: two 3x3 convs in sequence plus the identity shortcut
    "residual-basic": ("nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none",
                       "skip_connect"),
    # ResNet bottleneck: 1x1 -> 3x3 -> 1x1 plus the identity shortcut
    "residual-bottleneck": ("nor_conv_1x1", "none", "nor_conv_3x3", "skip_connect", "none",
                            "nor_conv_1x1"),
    # Inception: parallel 1x1, 1x1->3x3 and pooling branches summed at the output
    "inception": ("nor_conv_1x1", "none", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1",
                  "skip_connect"),
    # DenseNet: every node reads every earlier node (identity links) plus a conv chain
    "dense": ("nor_conv_3x3", "skip_connect", "nor_conv_3x3", "skip_connect", "skip_connect",
              "nor_conv_3x3"),
    # MobileNet-style cheap cell: 1x1 convolutions with a shortcut
    "cheap-mobile": ("nor_conv_1x1", "none", "nor_conv_1x1", "skip_connect", "none",
                     "skip_connect"),
}


@register_space("nb201")
class NB201Space:
    """The NAS-Bench-201 cell space as the search engine sees it.

    Genotypes are canonical arch strings; candidates carry them in ``Proposal.arch``. The space
    needs no code to be evaluated (a table answers), but :meth:`render` gives the trainable
    ``Net`` source for any cell.
    """

    name = "nb201"
    ops = OPS
    edges = EDGES
    size = NUM_ARCHS
    needs_code = False  # a table scores cells by arch string; code is rendered on demand
    default_backend = "table"

    def __init__(self, cells_per_stage: int = 5, **_: Any) -> None:
        self.cells_per_stage = cells_per_stage

    def open_table(self, config: Any) -> Any:
        """The run's table (``config.table`` or ``$ARCHLORE_NB201_TABLE``) for its dataset."""
        from archlore.search.spaces.nb201_table import NB201Table, resolve_dataset

        return NB201Table(getattr(config, "table", None), resolve_dataset(config.dataset))

    # genotype handling -------------------------------------------------
    def parse(self, arch: str) -> Cell:
        return parse_arch(arch)

    def format(self, cell: Cell | list[str]) -> str:
        return format_arch(cell)

    def canonical(self, arch: str) -> str:
        return canonical(arch)

    def validate(self, arch: str) -> str | None:
        """None if ``arch`` is a valid cell string, else the reason."""
        try:
            parse_arch(arch)
        except ArchError as exc:
            return str(exc)
        return None

    def seeds(self, constraints: Any = None) -> list[str]:
        """Classic designs as cells (:data:`CLASSIC_CELLS`): where knowledge-driven strategies
        start. Baselines (random search, REA) start from uniform samples instead."""
        return [format_arch(c) for c in CLASSIC_CELLS.values()]

    def random(self, rng: np.random.Generator, constraints: Any = None) -> str:
        """A uniformly random cell (all 15,625 equally likely)."""
        return format_arch(random_cell(rng))

    sample = random  # the first API's name

    def mutate(self, arch: str, rng: np.random.Generator, constraints: Any = None) -> str:
        """One edge changed to a different op."""
        return format_arch(mutate_cell(parse_arch(arch), rng))

    def crossover(self, a: str, b: str, rng: np.random.Generator, constraints: Any = None) -> str:
        return format_arch(crossover_cells(parse_arch(a), parse_arch(b), rng))

    def encode(self, arch: str) -> str:
        return canonical(arch)

    def decode(self, arch: str) -> str:
        try:
            return canonical(arch)
        except ArchError as exc:
            raise ValueError(str(exc)) from None

    def neighbours(self, arch: str) -> list[str]:
        return [format_arch(c) for c in neighbours(parse_arch(arch))]

    def describe(self, arch: str, constraints: Any = None) -> dict[str, float]:
        d = describe_cell(parse_arch(arch))
        size, classes, ch = _shape(constraints)
        d["width_depth_ratio"] = d["width_to_depth"]
        d["mmacs"] = self.macs(arch, size, classes, ch) / 1e6
        return d

    def descriptor_ranges(self, constraints: Any = None) -> dict[str, tuple[float, float]]:
        lo, hi = self.macs_range(*_shape(constraints))
        return {"width_depth_ratio": (0.0, 3.0), "mmacs": (lo / 1e6, hi / 1e6)}

    def macs(self, arch: str, image_size: int = 32, num_classes: int = 10,
             in_channels: int = 3) -> int:
        """MACs per image of the rendered network (table convention; see :func:`cell_macs`)."""
        return cell_macs(parse_arch(arch), image_size, num_classes, in_channels,
                         self.cells_per_stage)

    def macs_range(self, image_size: int = 32, num_classes: int = 10,
                   in_channels: int = 3) -> tuple[int, int]:
        """(min, max) MACs over the space: no convolutions in the cells vs all 3x3."""
        lo = cell_macs(("none",) * NUM_EDGES, image_size, num_classes, in_channels,
                       self.cells_per_stage)
        hi = cell_macs(("nor_conv_3x3",) * NUM_EDGES, image_size, num_classes, in_channels,
                       self.cells_per_stage)
        return lo, hi

    def key(self, arch: str) -> str:
        """Dedupe key: the canonical string (cells differ iff strings differ)."""
        return canonical(arch)

    # code ---------------------------------------------------------------
    def render(self, arch: str, constraints: Any = None, cells_per_stage: int | None = None) -> str:
        """Trainable ``Net`` source following the NAS-Bench-201 macro skeleton."""
        from archlore.search.spaces.nb201_render import render_net

        n = self.cells_per_stage if cells_per_stage is None else cells_per_stage
        return render_net(arch, cells_per_stage=n)


def _shape(constraints: Any) -> tuple[int, int, int]:
    """(image size, classes, input channels) of the constraints; CIFAR-10's by default."""
    if constraints is None:
        return 32, 10, 3
    return constraints.image_size, constraints.num_classes, constraints.in_channels
