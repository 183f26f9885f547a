"""NAS-Bench-201 as a lookup table: the CSV reader (scored through the ``table`` backend) and a
converter from the official NAS-Bench-201 / NATS-Bench API objects to that CSV.

CSV format (see ``shared/data/README.md``): one row per cell, columns ``arch``,
``nb201_index`` and, per dataset ``D``, ``D_valid_acc`` / ``D_test_acc`` (percent, 200 epochs,
seed-averaged), ``D_flops_M`` (millions of MACs of conv + linear layers per image) and
``D_params_M`` (millions). archlore ships no copy: point ``--table`` or the env var
``ARCHLORE_NB201_TABLE`` at one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from archlore.evaluator.records import Evaluation
from archlore.search.spaces.nb201 import ArchError, canonical

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")
TABLE_ENV = "ARCHLORE_NB201_TABLE"
METRICS = ("valid_acc", "test_acc", "flops_M", "params_M")
_CACHE: dict[tuple[str, str], dict[str, NB201Entry]] = {}


def resolve_dataset(name: str) -> str:
    """Case-insensitive dataset name -> canonical spelling (``imagenet16-120`` ok)."""
    for d in DATASETS:
        if name.lower() == d.lower():
            return d
    raise ValueError(f"unknown NAS-Bench-201 dataset {name!r} (known: {', '.join(DATASETS)})")


def default_table_path() -> Path | None:
    """``$ARCHLORE_NB201_TABLE`` if set, else None (callers must say where the table is)."""
    env = os.environ.get(TABLE_ENV)
    return Path(env).expanduser() if env else None


@dataclass(frozen=True)
class NB201Entry:
    """One cell on one dataset. Accuracies in percent, flops_M in millions of MACs/image."""

    arch: str
    index: int
    valid_acc: float
    test_acc: float
    flops_M: float
    params_M: float

    def evaluation(self, dataset: str) -> Evaluation:
        """As the evaluator would report it: fractions, MACs and params as counts."""
        return Evaluation(
            status="ok", stage="eval", dataset=dataset,
            val_acc=self.valid_acc / 100.0, test_acc=self.test_acc / 100.0,
            macs=int(round(self.flops_M * 1e6)), params=int(round(self.params_M * 1e6)),
            reason="NAS-Bench-201 table (200 epochs, seed-averaged)",
        )


class NB201Table:
    """Read-only answers for one dataset: ``table[arch] -> NB201Entry``.

    Parsing the CSV takes ~0.1 s; tables are cached per (path, dataset) in the process.
    """

    def __init__(self, path: str | Path | None = None, dataset: str = "cifar10") -> None:
        path = Path(path).expanduser() if path else default_table_path()
        if path is None:
            raise FileNotFoundError(
                f"no NAS-Bench-201 table given: pass --table PATH or set {TABLE_ENV}")
        if not path.is_file():
            raise FileNotFoundError(f"NAS-Bench-201 table not found: {path}")
        self.path = path
        self.dataset = resolve_dataset(dataset)
        key = (str(path.resolve()), self.dataset)
        if key not in _CACHE:
            _CACHE[key] = _read(path, self.dataset)
        self._rows = _CACHE[key]

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, str) and arch in self._rows

    def __getitem__(self, arch: str) -> NB201Entry:
        try:
            return self._rows[arch]
        except KeyError:
            pass
        try:
            return self._rows[canonical(arch)]
        except KeyError:
            raise KeyError(f"arch not in the NAS-Bench-201 table: {arch}") from None

    def archs(self) -> list[str]:
        return list(self._rows)

    def entries(self) -> Iterable[NB201Entry]:
        return self._rows.values()

    def evaluate(self, arch: str) -> Evaluation:
        """The table's answer for ``arch`` as an Evaluation; a malformed or unknown arch gives
        a ``rejected`` Evaluation saying why (never raises)."""
        try:
            return self[arch].evaluation(self.dataset)
        except (ArchError, KeyError) as exc:
            return Evaluation(status="rejected", stage="build", dataset=self.dataset,
                              reason=f"not a NAS-Bench-201 cell: {exc}")


def _read(path: Path, dataset: str) -> dict[str, NB201Entry]:
    cols = [f"{dataset}_{m}" for m in METRICS]
    rows: dict[str, NB201Entry] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ["arch", "nb201_index", *cols] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks NAS-Bench-201 columns: {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                values = [float(row[c]) for c in cols]
                arch = canonical(row["arch"])
                if arch in rows:  # two spellings of one cell: keeping either would hide the other
                    raise ValueError(f"cell {arch} appears twice")
                rows[arch] = NB201Entry(arch, int(row["nb201_index"]), *values)
            except (ValueError, ArchError) as exc:
                raise ValueError(f"{path}:{line}: bad NAS-Bench-201 row: {exc}") from None
    return rows


# --- converter from the official API --------------------------------------------------------

class BenchmarkAPI(Protocol):
    """The part of ``nas_201_api.NASBench201API`` / ``nats_bench`` (tss) the converter uses."""

    def __len__(self) -> int: ...
    def arch(self, index: int) -> str: ...
    def get_more_info(self, index: int, dataset: str, iepoch: Any = None, hp: str = "200",
                      is_random: bool = False) -> dict[str, Any]: ...
    def get_cost_info(self, index: int, dataset: str, hp: str = "200") -> dict[str, Any]: ...


def _accuracy(info: dict[str, Any], key: str, where: str) -> float:
    try:
        return float(info[key])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: API answer lacks a numeric {key!r} "
                         f"(keys: {', '.join(map(str, info)) if isinstance(info, dict) else info})"
                         ) from None


def convert_api(api: BenchmarkAPI, out: str | Path, hp: str = "200") -> int:
    """Write the archlore CSV from an official NAS-Bench-201 / NATS-Bench (tss) API object.

    Accuracies are the seed-averaged ones (``is_random=False``) after ``hp`` epochs.
    CIFAR-10 valid = ``cifar10-valid`` x-valid (trained on the train half), CIFAR-10 test =
    ``cifar10`` ori-test (trained on train+valid); CIFAR-100 and ImageNet16-120 take valid
    from x-valid and test from x-test. Returns the number of rows written.
    """
    out = Path(out)
    header = ["arch", "nb201_index"] + [f"{d}_{m}" for d in DATASETS for m in METRICS]
    rows = []
    for index in range(len(api)):
        arch = canonical(api.arch(index))
        row: list[Any] = [arch, index]
        for d in DATASETS:
            where = f"arch {index} on {d}"
            if d == "cifar10":
                valid = _accuracy(api.get_more_info(index, "cifar10-valid", hp=hp, is_random=False),
                                  "valid-accuracy", where)
                test = _accuracy(api.get_more_info(index, "cifar10", hp=hp, is_random=False),
                                 "test-accuracy", where)
            else:
                info = api.get_more_info(index, d, hp=hp, is_random=False)
                valid = _accuracy(info, "valid-accuracy", where)
                test = _accuracy(info, "test-accuracy", where)
            cost = api.get_cost_info(index, d)
            row += [valid, test, _accuracy(cost, "flops", where), _accuracy(cost, "params", where)]
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(out)  # never leave a half-written table behind
    return len(rows)


def load_api(path: str | Path) -> BenchmarkAPI:
    """Open the official benchmark file with whichever API package is installed
    (``nats_bench`` or ``nas_201_api``; neither is a dependency of archlore)."""
    try:
        from nats_bench import create  # type: ignore[import-not-found]

        return create(str(path), "tss", fast_mode=True, verbose=False)
    except ImportError:
        pass
    try:
        from nas_201_api import NASBench201API  # type: ignore[import-not-found]
    except ImportError:
        raise ImportError("converting needs the official API: pip install nats_bench "
                          "(or nas-bench-201)") from None
    return NASBench201API(str(path), verbose=False)
