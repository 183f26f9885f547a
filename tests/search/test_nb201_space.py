"""NB201 space: arch strings, variation operators, table, backend, converter."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from archlore.search.backends.table import TableBackend as NB201TableBackend
from archlore.search.records import Candidate
from archlore.search.registry import SPACES
from archlore.search.spaces.nb201 import (
    NUM_ARCHS,
    OPS,
    ArchError,
    NB201Space,
    all_archs,
    canonical,
    cell_macs,
    connected,
    format_arch,
    parse_arch,
)
from archlore.search.spaces.nb201_table import DATASETS, NB201Table, convert_api

from tests.search.nb201_fixtures import table_path

BEST_C10 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
            "nor_conv_1x1~2|")


def test_round_trip_on_the_whole_table():
    rows = list(csv.DictReader(table_path().open()))
    assert len(rows) == NUM_ARCHS
    strings = {r["arch"] for r in rows}
    assert strings == set(all_archs())  # the table covers the space exactly once
    for s in strings:
        assert format_arch(parse_arch(s)) == s


@pytest.mark.parametrize("bad, words", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "expected 3 .*-separated nodes"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op"),
    ("|none~0|+|none~1|none~1|+|none~0|none~1|none~2|", "must read node 0"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 inputs"),
])
def test_bad_arch_strings_say_what_is_wrong(bad, words):
    with pytest.raises(ArchError, match=words):
        parse_arch(bad)
    assert NB201Space().validate(bad) is not None


def test_registered_and_sampling_is_uniform_and_seeded():
    space = SPACES.get("nb201")()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(3000)]
    counts = {op: 0 for op in OPS}
    for a in archs:
        for op in parse_arch(a):
            counts[op] += 1
    assert all(abs(c / (6 * 3000) - 0.2) < 0.02 for c in counts.values())
    again = [space.sample(np.random.default_rng(0)) for _ in range(1)]
    assert again[0] == archs[0]


def test_mutation_changes_exactly_one_edge_and_crossover_mixes_parents():
    space = NB201Space()
    rng = np.random.default_rng(1)
    for _ in range(300):
        a, b = space.sample(rng), space.sample(rng)
        child = parse_arch(space.mutate(a, rng))
        assert sum(x != y for x, y in zip(child, parse_arch(a), strict=True)) == 1
        mix = parse_arch(space.crossover(a, b, rng))
        assert all(m in (x, y) for m, x, y in zip(mix, parse_arch(a), parse_arch(b), strict=True))
    assert len(space.neighbours(BEST_C10)) == 24
    assert not connected(("none",) * 6)
    assert connected(("none", "none", "none", "skip_connect", "none", "none"))


@pytest.mark.parametrize("dataset, size, classes", [
    ("cifar10", 32, 10), ("cifar100", 32, 100), ("ImageNet16-120", 16, 120)])
def test_table_values_and_analytic_macs(dataset, size, classes):
    table = NB201Table(table_path(), dataset)
    e = table[BEST_C10]
    ev = table.evaluate(BEST_C10)
    assert ev.ok and ev.dataset == dataset
    assert ev.val_acc == pytest.approx(e.valid_acc / 100) and 0 < ev.val_acc < 1
    assert ev.test_acc == pytest.approx(e.test_acc / 100)
    assert ev.macs == round(e.flops_M * 1e6) and ev.params == round(e.params_M * 1e6)
    # the structure-only MAC formula reproduces the table's FLOPs column for every cell
    worst = max(abs(cell_macs(parse_arch(x.arch), size, classes) / 1e6 - x.flops_M)
                for x in table.entries())
    assert worst < 1e-4
    # disconnected cells are in the table too and get its values
    assert table.evaluate(format_arch(("none",) * 6)).ok
    bad = table.evaluate("|nope~0|")
    assert bad.status == "rejected" and "not a NAS-Bench-201 cell" in bad.reason


def test_reference_maxima_from_the_data_readme():
    t10 = NB201Table(table_path(), "cifar10")
    assert max(e.test_acc for e in t10.entries()) == pytest.approx(94.3733, abs=1e-3)
    assert max(e.valid_acc for e in t10.entries()) == pytest.approx(91.6067, abs=1e-3)
    assert NB201Table(table_path(), "imagenet16-120").dataset == "ImageNet16-120"


def test_backend_answers_candidates_at_once():
    backend = NB201TableBackend(NB201Table(table_path(), "cifar100"))
    ok = backend.submit(Candidate(id=0, arch=BEST_C10.replace("|", " | ").strip()))
    missing = backend.submit(Candidate(id=1, arch=None))
    assert ok.done() and ok.result().ok
    assert ok.result().test_acc == pytest.approx(NB201Table(table_path(), "cifar100")[BEST_C10]
                                                 .test_acc / 100)
    assert missing.result().status == "rejected"
    assert backend.queries == 2


def test_missing_table_and_columns_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        NB201Table(tmp_path / "nope.csv", "cifar10")
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,nb201_index\n")
    with pytest.raises(ValueError, match="lacks NAS-Bench-201 columns: cifar10_valid_acc"):
        NB201Table(bad, "cifar10")
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 dataset"):
        NB201Table(table_path(), "mnist")


def test_a_cell_listed_twice_is_a_clear_error(tmp_path):
    # two spellings of one cell used to keep the last row silently
    lines = table_path().read_text().splitlines()[:3]
    arch = lines[1].split(",")[0]
    lines.append(lines[2].replace(lines[2].split(",")[0], arch.replace("|", " | "), 1))
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"dup.csv:4: .*appears twice"):
        NB201Table(dup, "cifar10")


class MockAPI:
    """Mimics nas_201_api.NASBench201API / nats_bench tss: indices, arch(i), get_more_info,
    get_cost_info, with the official dataset names and result keys."""

    def __init__(self, archs: list[str]) -> None:
        self.meta_archs = archs
        self.calls: list[tuple[int, str, str, bool]] = []

    def __len__(self) -> int:
        return len(self.meta_archs)

    def arch(self, index: int) -> str:
        return self.meta_archs[index]

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        base = {"cifar10-valid": 80.0, "cifar10": 90.0, "cifar100": 60.0,
                "ImageNet16-120": 30.0}[dataset]
        info = {"train-loss": 0.1, "train-accuracy": 99.0, "valid-accuracy": base + index,
                "test-accuracy": base + index + 0.5}
        if dataset == "cifar10":  # the official answer for cifar10 has no x-valid split
            info.pop("valid-accuracy")
        return info

    def get_cost_info(self, index, dataset, hp="200"):
        return {"flops": 10.0 + index, "params": 0.1 * (index + 1), "latency": 0.01}


def test_converter_on_a_mock_api(tmp_path):
    archs = all_archs()[:3]
    api = MockAPI([a.replace("|", "|", 1) for a in archs])
    out = tmp_path / "t" / "nb.csv"
    assert convert_api(api, out) == 3
    assert all(hp == "200" and not rnd for _, _, hp, rnd in api.calls)  # 200 epochs, averaged
    t = NB201Table(out, "cifar10")
    e = t[archs[2]]
    assert (e.valid_acc, e.test_acc, e.flops_M, e.params_M) == (82.0, 92.5, 12.0,
                                                                pytest.approx(0.3))
    assert NB201Table(out, "ImageNet16-120")[archs[1]].valid_acc == 31.0
    header = out.read_text().splitlines()[0].split(",")
    assert header[:2] == ["arch", "nb201_index"] and len(header) == 2 + 4 * len(DATASETS)


def test_converter_names_a_missing_key(tmp_path):
    class Broken(MockAPI):
        def get_more_info(self, *a, **k):
            return {"valid-acc": 1.0}

    with pytest.raises(ValueError, match="lacks a numeric 'valid-accuracy'"):
        convert_api(Broken(all_archs()[:1]), tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()  # nothing half-written


def test_canonical_normalises_whitespace():
    assert canonical(" " + BEST_C10 + "\n") == BEST_C10
    assert math.isclose(len(all_archs()), NUM_ARCHS)
