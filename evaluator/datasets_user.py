"""User datasets (``folder:PATH``, ``npz:FILE``) and MNIST / Fashion-MNIST from idx files.

Registered into :mod:`archlore.evaluator.data` at its import. numpy only at import time;
Pillow is imported when an image folder is actually read.

**Conversion and cache.** The parent (which loads every dataset and hands workers arrays;
workers read no dataset file) validates every file of a user dataset and converts it once
into ``<data root>/.archlore-cache/<kind>-<name>-<key>.npz`` (``np.savez``, never a pickle;
written to a temporary file and renamed). The key is the source's absolute path and the
options; the cache is rebuilt when the source changes (file names, sizes, modification
times), so a second run or a resumed search does not decode the images again. Without a data
root, or when it is not writable, the converted arrays are kept in memory for the process.

Names and options (query-string syntax, all optional)::

    folder:PATH?size=32&val=0.1&test=0.1&seed=0&channels=3&flip=1&pad=4
    npz:FILE?val=0.1&seed=0&flip=1&pad=4

A relative PATH/FILE is relative to the data root. ``folder:``: one sub-folder per class
(sorted names are the labels 0..K-1), ``.png``/``.jpg``/``.jpeg`` images; a fixed stratified
val/test split by fraction and seed; ``size`` resizes every image to size x size (bilinear),
otherwise all images must share one square size; ``channels`` is 1 when every image is
grayscale, else 3 (RGB), unless given. ``npz:``: arrays ``x_train, y_train, x_test, y_test``
(optional ``x_val, y_val``; otherwise ``val`` of the training set is held out), images as
(N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
from archlore.evaluator.data import (
    SPLIT_SEED,
    DatasetError,
    DatasetSpec,
    Splits,
    _normalise,
    register_dataset,
    register_dataset_family,
)

log = logging.getLogger("archlore.evaluator")
CACHE_DIR = ".archlore-cache"
CACHE_VERSION = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_OPTIONS = {
    "folder": {"size", "val", "test", "seed", "channels", "flip", "pad"},
    "npz": {"val", "seed", "flip", "pad"},
}


# --------------------------------------------------------------------------- name parsing

@dataclass(frozen=True)
class UserSource:
    """A parsed ``folder:`` / ``npz:`` name: kind, absolute source path and options."""

    kind: str  # "folder" | "npz"
    path: Path
    size: int | None = None
    val: float = 0.1
    test: float = 0.1
    seed: int = SPLIT_SEED
    channels: int | None = None
    flip: bool = True
    pad: int | None = None

    def key(self) -> str:
        """Cache key: the absolute path and every option that changes the arrays."""
        ident = json.dumps([CACHE_VERSION, self.kind, str(self.path), self.size, self.val,
                            self.test, self.seed, self.channels])
        return hashlib.sha256(ident.encode()).hexdigest()[:16]


def parse_user_name(name: str, root: Path | None) -> UserSource:
    """Parse ``folder:PATH?opts`` / ``npz:FILE?opts``; a relative path is under ``root``."""
    kind, _, rest = name.partition(":")
    kind = kind.lower()
    raw_path, _, query = rest.partition("?")
    if not raw_path:
        raise DatasetError(f"dataset {name!r}: give a path, e.g. {kind}:/data/my_images")
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        if root is None:
            raise DatasetError(
                f"dataset {name!r}: the relative path {raw_path!r} is read under the data root; "
                f"pass --data-root / EvalConfig.data_root / ARCHLORE_DATA, or an absolute path")
        path = root / path
    path = Path(os.path.abspath(path))
    opts: dict = {}
    allowed = _OPTIONS[kind]
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise DatasetError(f"dataset {name!r}: unknown option {key!r}; "
                               f"{kind}: takes {', '.join(sorted(allowed))}")
        try:
            if key in ("val", "test"):
                opts[key] = float(value)
            elif key == "flip":
                opts[key] = value.lower() not in ("0", "false", "no", "off")
            else:
                opts[key] = int(value)
        except ValueError:
            raise DatasetError(f"dataset {name!r}: option {key}={value!r} is not a number") \
                from None
    src = UserSource(kind, path, **opts)
    if not (0 <= src.val < 1 and 0 <= src.test < 1 and src.val + src.test < 1):
        raise DatasetError(f"dataset {name!r}: val={src.val} and test={src.test} must be "
                           f"fractions in [0, 1) that sum to less than 1")
    if src.size is not None and not 1 <= src.size <= 1024:
        raise DatasetError(f"dataset {name!r}: size={src.size} must be within 1..1024")
    if src.channels not in (None, 1, 3):
        raise DatasetError(f"dataset {name!r}: channels={src.channels} must be 1 or 3")
    if src.pad is not None and not 0 <= src.pad <= 64:
        raise DatasetError(f"dataset {name!r}: pad={src.pad} must be within 0..64")
    return src


# --------------------------------------------------------------------------- image folders

def _class_dirs(folder: Path) -> list[Path]:
    if not folder.exists():
        raise DatasetError(f"{folder}: no such folder (folder: datasets are one sub-folder "
                           f"per class of PNG/JPEG images)")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (folder: datasets are one sub-folder per "
                           f"class of PNG/JPEG images; use npz: for an array file)")
    try:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list: {exc}") from exc
    if len(classes) < 2:
        raise DatasetError(f"{folder}: found {len(classes)} class sub-folder(s); a folder "
                           f"dataset needs one sub-folder per class, at least 2")
    return classes


def _images_of(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir()
                   if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{class_dir}: empty class folder (no .png/.jpg/.jpeg images)")
    return files


def _folder_listing(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = _class_dirs(folder)
    items = [(f, label) for label, d in enumerate(classes) for f in _images_of(d)]
    return [d.name for d in classes], items


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _convert_folder(src: UserSource) -> tuple[dict, dict[str, np.ndarray]]:
    """Decode, validate and stack every image; returns (meta, arrays)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency
        raise DatasetError("folder: datasets need Pillow (pip install pillow)") from exc
    names, items = _folder_listing(src.path)
    headers = []
    for path, _ in items:  # header pass: modes and sizes without decoding
        try:
            with Image.open(path) as im:
                headers.append((im.mode, im.size))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") \
                from exc
    channels = src.channels or (1 if all(m in _GRAY_MODES for m, _ in headers) else 3)
    if src.size is None:
        first_size, first = headers[0][1], items[0][0]
        for (path, _), (_, size) in zip(items, headers, strict=True):
            if size != first_size:
                raise DatasetError(
                    f"{src.path}: mixed image sizes: {path} is {size[0]}x{size[1]} but {first} "
                    f"is {first_size[0]}x{first_size[1]}; add ?size=N to resize all to NxN")
        if first_size[0] != first_size[1]:
            raise DatasetError(f"{first}: images are {first_size[0]}x{first_size[1]} (not "
                               f"square); add ?size=N to resize all to NxN")
        size = first_size[0]
    else:
        size = src.size
    x = np.empty((len(items), channels, size, size), np.uint8)
    mode = "L" if channels == 1 else "RGB"
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as exc:  # truncated / corrupt pixel data
            raise DatasetError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") \
                from exc
        x[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    y = np.array([label for _, label in items], np.int64)
    split = _stratified_split(y, src.val, src.test, src.seed)
    for name, part in (("training", 0), ("validation", 1), ("test", 2)):
        if (part == 0 or (src.val if part == 1 else src.test) > 0) and not (split == part).any():
            raise DatasetError(f"{src.path}: too few images for a {name} split "
                               f"(val={src.val}, test={src.test}, {len(y)} images)")
    meta = {"classes": names, "num_classes": len(names), "in_channels": channels,
            "image_size": size, "fingerprint": _fingerprint([p for p, _ in items])}
    return meta, {"x": x, "y": y, "split": split}


def _stratified_split(y: np.ndarray, val: float, test: float, seed: int) -> np.ndarray:
    """0/1/2 (train/val/test) per image: per class, a seeded permutation cut by fraction."""
    rng = np.random.default_rng(seed)
    split = np.zeros(len(y), np.int8)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val, n_test = int(round(len(idx) * val)), int(round(len(idx) * test))
        if n_val + n_test >= len(idx):  # keep at least one training image per class
            n_test = max(0, min(n_test, len(idx) - 1 - n_val))
            n_val = max(0, min(n_val, len(idx) - 1 - n_test))
        split[idx[:n_val]] = 1
        split[idx[n_val:n_val + n_test]] = 2
    return split


# --------------------------------------------------------------------------- npz arrays

def _npz_images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
            pass  # NCHW
        elif x.shape[3] in (1, 3):
            x = x.transpose(0, 3, 1, 2)  # NHWC
        else:
            raise DatasetError(f"{path}: {key} has shape {x.shape}; expected (N, H, W), "
                               f"(N, H, W, C) or (N, C, H, W) with C = 1 or 3")
    else:
        raise DatasetError(f"{path}: {key} has shape {x.shape}; expected (N, H, W), "
                           f"(N, H, W, C) or (N, C, H, W) with C = 1 or 3")
    if x.shape[2] != x.shape[3]:
        raise DatasetError(f"{path}: {key} images are {x.shape[2]}x{x.shape[3]}; only square "
                           f"images are supported")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DatasetError(f"{path}: {key} has dtype {x.dtype}; expected uint8 or float")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{path}: {key} contains NaN or inf")
    return np.ascontiguousarray(x)


def _npz_labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{path}: {key} has shape {y.shape}; expected (N,) integer labels")
    if len(y) != n:
        raise DatasetError(f"{path}: {key} has {len(y)} labels but the images have {n}")
    if np.issubdtype(y.dtype, np.floating):
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise DatasetError(f"{path}: {key} holds non-integer labels")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: {key} has dtype {y.dtype}; expected integer labels")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DatasetError(f"{path}: {key} has negative labels (min {y.min()}); labels must "
                           f"be 0..K-1")
    return y


def _convert_npz(src: UserSource) -> tuple[dict, dict[str, np.ndarray]]:
    path = src.path
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (npz: datasets are a numpy .npz with "
                           f"x_train, y_train, x_test, y_test)")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if magic != b"PK\x03\x04":
        raise DatasetError(f"{path}: not a readable .npz (no zip signature; save it with "
                           f"numpy.savez)")
    try:  # allow_pickle=False: an .npz with object arrays could run code when loaded
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DatasetError(f"{path}: holds object (pickled) arrays, which are refused; "
                               f"save plain numeric arrays") from exc
        raise DatasetError(f"{path}: not a readable .npz ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - zip/format errors of a user file
        raise DatasetError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") \
            from exc
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise DatasetError(f"{path}: missing arrays {', '.join(missing)} (has "
                           f"{', '.join(sorted(arrays)) or 'none'}; expected x_train, y_train, "
                           f"x_test, y_test and optionally x_val, y_val)")
    parts = ["train", "val", "test"] if "x_val" in arrays else ["train", "test"]
    xs = {p: _npz_images(path, f"x_{p}", arrays[f"x_{p}"]) for p in parts}
    ys = {p: _npz_labels(path, f"y_{p}", arrays[f"y_{p}"], len(xs[p])) for p in parts}
    shapes = {xs[p].shape[1:] for p in parts}
    if len(shapes) > 1:
        raise DatasetError(f"{path}: image shapes differ between splits: "
                           + ", ".join(f"x_{p} {xs[p].shape[1:]}" for p in parts))
    if len({xs[p].dtype for p in parts}) > 1:
        xs = {p: xs[p].astype(np.float32) for p in parts}
    if len(xs["train"]) == 0 or len(xs["test"]) == 0:
        raise DatasetError(f"{path}: x_train and x_test must not be empty")
    num_classes = int(max(ys[p].max() for p in parts if len(ys[p]))) + 1
    present = np.unique(ys["train"])
    if len(present) < 2:
        raise DatasetError(f"{path}: y_train holds {len(present)} distinct label(s); need >= 2")
    absent = sorted(set(range(num_classes)) - set(present.tolist()))
    if absent:
        hint = " (labels look 1-based; use 0..K-1)" if absent == [0] else ""
        raise DatasetError(f"{path}: labels must be 0..K-1 with K={num_classes} classes, but "
                           f"y_train has no example of class {', '.join(map(str, absent[:5]))}"
                           f"{hint}")
    if "val" in xs:
        x = np.concatenate([xs["train"], xs["val"], xs["test"]])
        y = np.concatenate([ys["train"], ys["val"], ys["test"]])
        split = np.repeat(np.array([0, 1, 2], np.int8),
                          [len(xs["train"]), len(xs["val"]), len(xs["test"])])
    else:
        n_tr = len(xs["train"])
        perm = np.random.default_rng(src.seed).permutation(n_tr)
        split_tr = np.zeros(n_tr, np.int8)
        split_tr[perm[:int(n_tr * src.val)]] = 1
        if src.val > 0 and not (split_tr == 1).any():
            raise DatasetError(f"{path}: val={src.val} of {n_tr} training images is empty")
        x = np.concatenate([xs["train"], xs["test"]])
        y = np.concatenate([ys["train"], ys["test"]])
        split = np.concatenate([split_tr, np.full(len(xs["test"]), 2, np.int8)])
    meta = {"classes": [str(i) for i in range(num_classes)], "num_classes": num_classes,
            "in_channels": int(x.shape[1]), "image_size": int(x.shape[2]),
            "fingerprint": _fingerprint([path])}
    return meta, {"x": x, "y": y, "split": split}


# --------------------------------------------------------------------------- the cache

def cache_path(src: UserSource, root: Path) -> Path:
    return root / CACHE_DIR / f"{src.kind}-{src.path.name[:40]}-{src.key()}.npz"


def _read_meta(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return json.loads(str(npz["meta"]))
    except Exception:  # noqa: BLE001 - a broken cache is rebuilt
        return None


def _source_fingerprint(src: UserSource) -> str | None:
    """The current fingerprint, or None when the source is not readable here (the worker)."""
    try:
        if src.kind == "npz":
            if not src.path.is_file():
                _convert_npz(src)  # raises "no such file"
            return _fingerprint([src.path])
        _, items = _folder_listing(src.path)  # raises for a malformed folder
        return _fingerprint([p for p, _ in items])
    except OSError:
        return None
    except DatasetError as exc:
        if isinstance(exc.__cause__, OSError):  # listing denied (the worker's Landlock)
            return None
        raise


def _convert(src: UserSource) -> tuple[dict, dict[str, np.ndarray]]:
    return _convert_folder(src) if src.kind == "folder" else _convert_npz(src)


def _write_cache(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)  # atomic: a reader sees the old cache or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_MEMO: dict[tuple, dict] = {}  # (source, root, fingerprint) -> meta
_IN_MEMORY: dict[tuple, dict[str, np.ndarray]] = {}  # same key -> arrays when not cached


def prepare_user_dataset(src: UserSource, root: Path | None) -> dict:
    """Validate the source and return its meta (classes, channels, size, fingerprint).

    With a data root: reuse ``<root>/.archlore-cache/...npz`` when its fingerprint matches
    the source, else convert and write it (atomically). Without a root, or when the root is
    not writable (a warning), the converted arrays are kept in memory for this process.
    Raises DatasetError naming the file and the problem for malformed input."""
    current = _source_fingerprint(src)
    memo_key = (src, root, current)
    if current is not None and memo_key in _MEMO:
        return _MEMO[memo_key]
    path = cache_path(src, root) if root is not None else None
    if path is not None and path.is_file():
        meta = _read_meta(path)
        if meta is not None and (current is None or meta.get("fingerprint") == current):
            _MEMO[memo_key] = meta
            return meta
    meta, arrays = _convert(src)  # raises the precise error when unreadable or malformed
    if path is not None:
        try:
            _write_cache(path, meta, arrays)
            arrays = None
        except OSError as exc:
            log.warning("archlore: cannot cache %s at %s (%s); converting in memory",
                        src.path, path, exc)
    if arrays is not None:
        _IN_MEMORY.clear()  # keep one converted dataset, not every version of it
        _IN_MEMORY[memo_key] = arrays
    _MEMO[memo_key] = meta
    return meta


def load_user_splits(src: UserSource, root: Path | None) -> Splits:
    """Normalised splits: the fixed split of the converted arrays, per-channel standardised
    with the training statistics (as every other dataset)."""
    meta = prepare_user_dataset(src, root)
    arrays = _IN_MEMORY.get((src, root, _source_fingerprint(src)))
    if arrays is None:
        path = cache_path(src, root) if root is not None else None
        try:
            if path is None:
                raise FileNotFoundError("no data root")
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in ("x", "y", "split")}
        except Exception as exc:  # noqa: BLE001
            raise DatasetError(f"{path}: cannot read the converted copy of {src.path} "
                               f"({type(exc).__name__}: {exc})") from exc
    x, y, split = arrays["x"], arrays["y"], arrays["split"]
    tr, va, te = (np.flatnonzero(split == i) for i in range(3))
    train_x, val_x, test_x = _normalise(x[tr], x[va], x[te])
    return Splits(train_x, y[tr], val_x, y[va], test_x, y[te], int(meta["num_classes"]))


def _user_spec(name: str, root: Path | None) -> DatasetSpec:
    src = parse_user_name(name, root)
    meta = prepare_user_dataset(src, root)
    size = int(meta["image_size"])
    return DatasetSpec(
        name, int(meta["in_channels"]), int(meta["num_classes"]), size,
        lambda r: load_user_splits(parse_user_name(name, r), r),
        flip=src.flip, pad=src.pad if src.pad is not None else max(1, size // 8),
        description=f"user {src.kind} dataset {src.path}",
        check=lambda r: None)  # resolving this spec already validated and converted it


register_dataset_family("folder", _user_spec)
register_dataset_family("npz", _user_spec)


# --------------------------------------------------------------------------- MNIST family

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SYSTEM_DIRS = {  # Debian's dataset-fashion-mnist installs the real files here
    "mnist": (Path("/usr/share/datasets/mnist"),),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_ROOT_SUBDIRS = {"mnist": ("mnist", "MNIST/raw"),
                 "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw", "fashion_mnist")}


def _idx_file(folder: Path, base: str) -> Path | None:
    for name in (base + ".gz", base):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_search_dirs(name: str, root: Path | None) -> list[Path]:
    """Where ``mnist`` / ``fashion-mnist`` idx files are looked for, in order."""
    dirs = [root / sub for sub in _ROOT_SUBDIRS[name]] if root is not None else []
    return dirs + list(SYSTEM_DIRS[name])


def locate_idx(name: str, root: Path | None) -> Path:
    """The first folder holding all four idx files (``.gz`` or not); DatasetError otherwise."""
    searched = idx_search_dirs(name, root)
    for folder in searched:
        if all(_idx_file(folder, base) for base in IDX_FILES):
            return folder
    raise DatasetError(
        f"dataset {name!r}: idx files {', '.join(b + '.gz' for b in IDX_FILES)} not found in "
        f"{', '.join(map(str, searched))}; pass --download to fetch them into the data root"
        + ("" if root is not None else " (needs --data-root / ARCHLORE_DATA)"))


def read_idx(path: Path) -> np.ndarray:
    """An idx file (``.gz`` or raw) of unsigned bytes as an array; errors name the file."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DatasetError(f"{path}: not an idx file of unsigned bytes (magic "
                           f"{data[:4].hex() or 'missing'}, expected 0000080N)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: idx header is truncated")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = int(np.prod(dims))
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise DatasetError(f"{path}: idx dims {dims} need {expected} bytes, file has "
                           f"{len(body)} (truncated or corrupt)")
    return np.frombuffer(body, np.uint8).reshape(dims)


def _load_idx_dataset(name: str, root: Path | None) -> Splits:
    """Official 60k/10k train/test; a fixed 10% of the training images as validation."""
    folder = locate_idx(name, root)
    paths = [_idx_file(folder, base) for base in IDX_FILES]
    x_tr, y_tr, x_te, y_te = (read_idx(p) for p in paths)
    for xp, yp, x, y in ((paths[0], paths[1], x_tr, y_tr), (paths[2], paths[3], x_te, y_te)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"{xp} / {yp}: expected images (N, 28, 28) and labels (N,), "
                               f"got {x.shape} and {y.shape}")
        if y.max() > 9:
            raise DatasetError(f"{yp}: label {int(y.max())} outside 0..9")
    x_tr, x_te = x_tr[:, None], x_te[:, None]
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x_tr))
    n_val = max(1, len(x_tr) // 10)
    va, tr = perm[:n_val], perm[n_val:]
    train_x, val_x, test_x = _normalise(x_tr[tr], x_tr[va], x_te)
    y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
    return Splits(train_x, y_tr[tr], val_x, y_tr[va], test_x, y_te, 10)


register_dataset(DatasetSpec(
    "mnist", 1, 10, 28, lambda r: _load_idx_dataset("mnist", r), flip=False, pad=2,
    description="MNIST idx files (<data root>/mnist/ or --download)",
    check=lambda r: locate_idx("mnist", r) and None))
register_dataset(DatasetSpec(
    "fashion-mnist", 1, 10, 28, lambda r: _load_idx_dataset("fashion-mnist", r), flip=True,
    pad=2, description="Fashion-MNIST idx files (<data root>/fashion-mnist/, "
                       "/usr/share/datasets/fashion-mnist/ or --download)",
    check=lambda r: locate_idx("fashion-mnist", r) and None))
