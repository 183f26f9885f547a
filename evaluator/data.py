"""Datasets for proxy training: a small registry of loaders returning normalised arrays.

Each loader returns ``Splits``: float32 images ``(N, C, H, W)`` normalised per channel with
the training mean/std, int64 labels ``(N,)``, for fixed train/val/test splits. Nothing is
downloaded here: ``digits`` ships with scikit-learn, ``synthetic*`` is generated, and
``cifar10``/``cifar100``/``imagenet16-120``/``mnist``/``fashion-mnist`` are read from a user
directory (``EvalConfig.data_root`` or env ``ARCHLORE_DATA``; Fashion-MNIST also from
Debian's ``/usr/share/datasets/fashion-mnist``). ``folder:PATH`` / ``npz:FILE`` are user
datasets (``evaluator.datasets_user``); ``evaluator.download`` fetches the four public ones.

Only numpy here (no torch): the parent process uses ``dataset_info`` without importing torch.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_SEED = 20240601  # fixed: the split never depends on the training seed


class DatasetError(ValueError):
    """A dataset is unknown or its files are missing/malformed (message names the files)."""


@dataclass(frozen=True)
class Splits:
    """Normalised float32 images (N, C, H, W) and int64 labels (N,) per split."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset: shape, classes, augmentation, and how to load it."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    loader: Callable[[Path | None], Splits]
    expected_files: tuple[str, ...] = ()  # relative to the data root; empty: built in
    flip: bool = True  # horizontal flips are label-preserving (not for digits)
    pad: int = 4  # random-crop padding in pixels
    description: str = ""
    # Custom availability check (raises DatasetError) for data not at fixed expected_files.
    check: Callable[[Path | None], None] | None = None


_REGISTRY: dict[str, DatasetSpec] = {}
# Parametrised names "PREFIX:ARG" (folder:PATH, npz:FILE): PREFIX -> resolver(name, root).
_FAMILIES: dict[str, Callable[[str, Path | None], DatasetSpec]] = {}


def register_dataset(spec: DatasetSpec) -> None:
    _REGISTRY[spec.name] = spec


def register_dataset_family(prefix: str,
                            resolver: Callable[[str, Path | None], DatasetSpec]) -> None:
    """Names ``prefix:ARG`` resolve through ``resolver(name, data_root) -> DatasetSpec``."""
    _FAMILIES[prefix] = resolver


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def list_dataset_families() -> list[str]:
    """Parametrised dataset names, e.g. ``folder:PATH``, ``npz:FILE``."""
    return [f"{p}:{'PATH' if p == 'folder' else 'FILE'}" for p in sorted(_FAMILIES)]


def get_spec(name: str, data_root: str | os.PathLike | None = None) -> DatasetSpec:
    """The spec of a registered name, or of a ``folder:``/``npz:`` name (which reads or
    converts the user's files, so pass the same ``data_root`` the loader gets)."""
    prefix, sep, _ = name.partition(":")
    if sep and prefix.lower() in _FAMILIES:
        return _FAMILIES[prefix.lower()](name, resolve_root(data_root))
    try:
        return _REGISTRY[name] if name in _REGISTRY else _REGISTRY[name.lower()]
    except KeyError:
        known = list_datasets() + list_dataset_families()
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(known)}") from None


def dataset_info(name: str, data_root: str | os.PathLike | None = None) -> tuple[int, int, int]:
    """``(in_channels, num_classes, image_size)`` of a dataset."""
    spec = get_spec(name, data_root)
    return spec.in_channels, spec.num_classes, spec.image_size


def resolve_root(data_root: str | os.PathLike | None) -> Path | None:
    root = data_root or os.environ.get("ARCHLORE_DATA")
    return Path(root).expanduser() if root else None


def check_available(name: str, data_root: str | os.PathLike | None = None) -> None:
    """Raise DatasetError naming the expected files when a file-backed dataset is absent."""
    spec = get_spec(name, data_root)
    root = resolve_root(data_root)
    if spec.check is not None:
        spec.check(root)
        return
    if not spec.expected_files:
        return
    if root is None:
        raise DatasetError(
            f"dataset {name!r} is read from a local directory: pass --data-root / "
            f"EvalConfig.data_root or set ARCHLORE_DATA to a directory holding "
            f"{', '.join(spec.expected_files)}")
    missing = [f for f in spec.expected_files if not (root / f).is_file()]
    if missing:
        raise DatasetError(f"dataset {name!r}: missing under {root}: {', '.join(missing)} "
                           f"(expected {', '.join(spec.expected_files)})")


def load_dataset(name: str, data_root: str | os.PathLike | None = None) -> Splits:
    check_available(name, data_root)
    return get_spec(name, data_root).loader(resolve_root(data_root))


# ---------------------------------------------------------------------------------------------

def _normalise(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Per-channel standardisation with the training statistics; all float32 (N, C, H, W)."""
    train_x = train_x.astype(np.float32)
    mean = train_x.mean(axis=(0, 2, 3), keepdims=True)
    std = train_x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return [((x.astype(np.float32) - mean) / std).astype(np.float32) for x in (train_x, *others)]


def _split_indices(n: int, fractions: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Fixed, seeded permutation into (train, val, test) index arrays; fractions for val/test."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_val, n_test = int(n * fractions[0]), int(n * fractions[1])
    return perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test]


def _make_splits(x: np.ndarray, y: np.ndarray, tr, va, te, num_classes: int) -> Splits:
    train_x, val_x, test_x = _normalise(x[tr], x[va], x[te])
    y = y.astype(np.int64)
    return Splits(train_x, y[tr], val_x, y[va], test_x, y[te], num_classes)


def _load_digits(_: Path | None) -> Splits:
    """scikit-learn's 8x8 digits (1797 images): 1259 train / 269 val / 269 test, fixed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.reshape(-1, 1, 8, 8)
    tr, va, te = _split_indices(len(x), (0.15, 0.15))
    return _make_splits(x, bunch.target, tr, va, te, 10)


def make_synthetic(n: int, channels: int, size: int, classes: int, seed: int = SPLIT_SEED,
                   noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: a smooth random template per class, randomly shifted, plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(classes, channels, 4, 4)).astype(np.float32)
    templates = np.kron(coarse, np.ones((1, 1, size // 4, size // 4), np.float32))
    y = rng.integers(0, classes, size=n)
    shifts = rng.integers(-1, 2, size=(n, 2))
    x = templates[y]
    for dy in (-1, 0, 1):  # shift by at most one pixel, per image
        for dx in (-1, 0, 1):
            sel = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            x[sel] = np.roll(x[sel], (dy, dx), axis=(2, 3))
    x += noise * rng.standard_normal(size=x.shape, dtype=np.float32)
    return x, y.astype(np.int64)


def _load_synthetic(_: Path | None) -> Splits:
    """Tiny generated set for fast tests: 3x16x16, 10 classes, 1200/400/400."""
    x, y = make_synthetic(2000, 3, 16, 10)
    return _make_splits(x, y, np.arange(1200), np.arange(1200, 1600), np.arange(1600, 2000), 10)


def _load_synthetic_cifar(_: Path | None) -> Splits:
    """CIFAR-shaped generated set for throughput benchmarks: 3x32x32, 10 classes, 50k/5k/5k."""
    x, y = make_synthetic(60_000, 3, 32, 10, noise=2.0)
    return _make_splits(x, y, np.arange(50_000), np.arange(50_000, 55_000),
                        np.arange(55_000, 60_000), 10)


class _ArrayUnpickler(pickle.Unpickler):
    """Only what CIFAR/ImageNet16 batches hold (dicts, lists, bytes, numpy arrays): the
    parent, not a contained worker, reads the dataset files now (workers get no labels), so a
    tampered pickle must not be able to call anything else."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any decoding problem is a data-file problem
        raise DatasetError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_arrays(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[label_key], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: expected keys 'data' (N x 3072 uint8) and "
                           f"{label_key!r}: {exc}") from exc
    return x, y


def _cifar_splits(train: list[Path], test: Path, label_key: str, classes: int) -> Splits:
    """Official test set as test; a fixed 10% of the training images as validation."""
    parts = [_cifar_arrays(p, label_key) for p in train]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _cifar_arrays(test, label_key)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_val = max(1, len(x) // 10)
    va, tr = perm[:n_val], perm[n_val:]
    train_x, val_x, test_x = _normalise(x[tr], x[va], test_x)
    return Splits(train_x, y[tr], val_x, y[va], test_x, test_y, classes)


_CIFAR10_FILES = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)) + (
    "cifar-10-batches-py/test_batch",)
_CIFAR100_FILES = ("cifar-100-python/train", "cifar-100-python/test")
_IMNET16_FILES = tuple(f"ImageNet16/train_data_batch_{i}" for i in range(1, 11)) + (
    "ImageNet16/val_data",)


def _load_cifar10(root: Path | None) -> Splits:
    assert root is not None
    return _cifar_splits([root / f for f in _CIFAR10_FILES[:5]], root / _CIFAR10_FILES[5],
                         "labels", 10)


def _load_cifar100(root: Path | None) -> Splits:
    assert root is not None
    return _cifar_splits([root / _CIFAR100_FILES[0]], root / _CIFAR100_FILES[1],
                         "fine_labels", 100)


def _imagenet16_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """NAS-Bench-201's ImageNet16 pickles: 'data' (N x 768 uint8), 'labels' 1-based."""
    batch = _unpickle(path)
    try:
        x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 16, 16)
        y = np.asarray(batch["labels"], dtype=np.int64) - 1
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: expected keys 'data' (N x 768 uint8) and 'labels': "
                           f"{exc}") from exc
    keep = y < 120  # ImageNet16-120: the first 120 classes, as in NAS-Bench-201
    return x[keep], y[keep]


def _load_imagenet16_120(root: Path | None) -> Splits:
    """Train batches for training; NB201's val_data split in fixed halves for val and test."""
    assert root is not None
    parts = [_imagenet16_arrays(root / f) for f in _IMNET16_FILES[:10]]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    vx, vy = _imagenet16_arrays(root / _IMNET16_FILES[10])
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(vx))
    va, te = perm[: len(vx) // 2], perm[len(vx) // 2:]
    train_x, val_x, test_x = _normalise(x, vx[va], vx[te])
    return Splits(train_x, y, val_x, vy[va], test_x, vy[te], 120)


register_dataset(DatasetSpec("digits", 1, 10, 8, _load_digits, flip=False, pad=1,
                             description="scikit-learn 8x8 digits, bundled (default)"))
register_dataset(DatasetSpec("synthetic", 3, 10, 16, _load_synthetic, flip=False, pad=1,
                             description="generated 3x16x16 templates + noise, for tests"))
register_dataset(DatasetSpec("synthetic-cifar", 3, 10, 32, _load_synthetic_cifar, flip=False,
                             pad=2, description="generated 3x32x32, 50k train, for benchmarks"))
register_dataset(DatasetSpec("cifar10", 3, 10, 32, _load_cifar10, _CIFAR10_FILES,
                             description="CIFAR-10 python pickles (cifar-10-batches-py)"))
register_dataset(DatasetSpec("cifar100", 3, 100, 32, _load_cifar100, _CIFAR100_FILES,
                             description="CIFAR-100 python pickles (cifar-100-python)"))
register_dataset(DatasetSpec("imagenet16-120", 3, 120, 16, _load_imagenet16_120, _IMNET16_FILES,
                             pad=2, description="NAS-Bench-201 ImageNet16 pickles, 120 classes"))


# MNIST / Fashion-MNIST (idx files) and the folder:/npz: user-dataset families.
from archlore.evaluator import datasets_user as _datasets_user  # noqa: E402,F401
