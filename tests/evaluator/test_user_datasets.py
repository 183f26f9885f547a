"""User datasets (folder:, npz:) and MNIST-format idx files, on generated files; the real
Fashion-MNIST from Debian's dataset-fashion-mnist when it is installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from archlore.evaluator import EvalConfig, dataset_info
from archlore.evaluator import datasets_user as du
from archlore.evaluator.data import DatasetError, check_available, get_spec, load_dataset
from PIL import Image

NET = (
    "import torch\nfrom torch import nn\nclass Net(nn.Module):\n"
    "    def __init__(self, num_classes, in_channels):\n        super().__init__()\n"
    "        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)\n"
    "        self.fc = nn.Linear(4, num_classes)\n"
    "    def forward(self, x):\n        return self.fc(self.conv(x).mean(dim=(2, 3)))\n")


def make_folder(root: Path, classes=("cat", "dog", "fox"), n=10, size=(12, 12), mode="RGB",
                ext=".png") -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            arr = np.clip(rng.normal(60 * c + 40, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr, mode).save(d / f"{i:03d}{ext}")
    return root


# --------------------------------------------------------------------------- folder:

def test_folder_dataset_loads_with_fixed_stratified_split(tmp_path):
    src = make_folder(tmp_path / "pets")
    name = f"folder:{src}?val=0.2&test=0.2"
    assert dataset_info(name, tmp_path) == (3, 3, 12)
    a = load_dataset(name, tmp_path)
    b = load_dataset(name, tmp_path)
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (18, 6, 6)
    assert a.train_x.shape[1:] == (3, 12, 12) and a.train_x.dtype == np.float32
    assert sorted(np.bincount(a.val_y)) == [2, 2, 2]  # stratified: 2 per class
    assert np.array_equal(a.val_x, b.val_x) and a.num_classes == 3
    assert abs(float(a.train_x.mean())) < 1e-4  # normalised with the training statistics
    c = load_dataset(f"folder:{src}?val=0.2&test=0.2&seed=7", tmp_path)
    assert not np.array_equal(np.sort(a.test_x.ravel()), np.sort(c.test_x.ravel()))
    spec = get_spec(name, tmp_path)
    assert (spec.flip, spec.pad) == (True, 1)
    spec = get_spec(f"folder:{src}?flip=0&pad=3", tmp_path)
    assert (spec.flip, spec.pad) == (False, 3)


def test_folder_relative_to_data_root_grayscale_and_resize(tmp_path):
    make_folder(tmp_path / "digits_png", classes=("0", "1"), size=(20, 14), mode="L",
                ext=".jpg")
    assert dataset_info("folder:digits_png?size=16", tmp_path) == (1, 2, 16)
    s = load_dataset("folder:digits_png?size=16&channels=3", tmp_path)
    assert s.train_x.shape[1:] == (3, 16, 16)


def test_folder_is_converted_once_into_a_cache_under_the_data_root(tmp_path):
    src = make_folder(tmp_path / "outside" / "pets")
    root = tmp_path / "root"
    root.mkdir()
    name = f"folder:{src}"
    check_available(name, root)
    caches = list((root / du.CACHE_DIR).glob("folder-pets-*.npz"))
    assert len(caches) == 1
    mtime = caches[0].stat().st_mtime_ns
    check_available(name, root)
    assert caches[0].stat().st_mtime_ns == mtime  # unchanged source: cache reused
    make_folder(src, classes=("emu",), n=3)  # a new class: the cache is rebuilt
    du._MEMO.clear()
    assert dataset_info(name, root) == (3, 4, 12)
    assert caches[0].stat().st_mtime_ns != mtime


@pytest.mark.parametrize("case, pattern", [
    ("empty_class", r"pets/dog: empty class folder"),
    ("mixed_sizes", r"mixed image sizes: .*dog/000\.png is 9x9 but .*cat/000\.png is 12x12; "
                    r"add \?size=N"),
    ("unreadable", r"pets/dog/001\.png: unreadable image"),
    ("truncated", r"pets/dog/002\.png: unreadable image"),
    ("one_class", r"found 1 class sub-folder"),
    ("not_square", r"are 12x8 \(not square\); add \?size=N"),
    ("missing", r"nope: no such folder"),
    ("a_file", r"not a folder"),
])
def test_folder_errors_name_the_file_and_the_problem(tmp_path, case, pattern):
    src = tmp_path / "pets"
    if case == "one_class":
        make_folder(src, classes=("cat",))
    elif case == "not_square":
        make_folder(src, size=(12, 8))
    elif case != "missing":
        make_folder(src)
    if case == "empty_class":
        for f in (src / "dog").iterdir():
            f.unlink()
        (src / "dog" / "notes.txt").write_text("not an image")
    elif case == "mixed_sizes":
        Image.new("RGB", (9, 9)).save(src / "dog" / "000.png")
    elif case == "unreadable":
        (src / "dog" / "001.png").write_bytes(b"this is not a png")
    elif case == "truncated":
        data = (src / "dog" / "002.png").read_bytes()
        (src / "dog" / "002.png").write_bytes(data[: len(data) // 2])
    elif case == "a_file":
        src = tmp_path / "pets.png"
        Image.new("RGB", (4, 4)).save(src)
    name = f"folder:{tmp_path / 'nope' if case == 'missing' else src}"
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(name, tmp_path)


@pytest.mark.parametrize("name, pattern", [
    ("folder:x?colour=1", r"unknown option 'colour'; folder: takes channels, flip, pad, seed"),
    ("folder:x?val=0.6&test=0.5", r"must be fractions in \[0, 1\) that sum to less than 1"),
    ("folder:x?size=big", r"option size='big' is not a number"),
    ("folder:x?channels=2", r"channels=2 must be 1 or 3"),
    ("npz:x?size=3", r"unknown option 'size'"),
    ("folder:", r"give a path"),
])
def test_bad_names(tmp_path, name, pattern):
    with pytest.raises(DatasetError, match=pattern):
        get_spec(name, tmp_path)


def test_without_a_data_root_conversion_stays_in_memory(tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHLORE_DATA", raising=False)
    src = make_folder(tmp_path / "pets")
    assert dataset_info(f"folder:{src}") == (3, 3, 12)
    check_available(f"folder:{src}", None)
    assert len(load_dataset(f"folder:{src}").train_x) == 24
    assert not list(tmp_path.rglob(du.CACHE_DIR))
    with pytest.raises(DatasetError, match="relative path 'pets' is read under the data root"):
        get_spec("folder:pets")


def test_read_only_data_root_falls_back_to_memory(tmp_path, monkeypatch):
    src = make_folder(tmp_path / "pets")
    root = tmp_path / "ro"
    root.mkdir()
    monkeypatch.setattr(du, "_write_cache", lambda *a: (_ for _ in ()).throw(
        PermissionError("read-only")))
    assert len(load_dataset(f"folder:{src}", root).val_x) == 3
    assert not (root / du.CACHE_DIR).exists()


# --------------------------------------------------------------------------- npz:

def _npz(path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {"x_train": rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8),
            "y_train": np.arange(40) % 4,
            "x_test": rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8),
            "y_test": np.arange(12) % 4}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_layouts_and_splits(tmp_path):
    _npz(tmp_path / "nhwc.npz")
    assert dataset_info("npz:nhwc.npz", tmp_path) == (3, 4, 10)
    s = load_dataset("npz:nhwc.npz?val=0.25", tmp_path)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (30, 10, 12)
    rng = np.random.default_rng(1)
    _npz(tmp_path / "nchw.npz", x_train=rng.normal(size=(40, 1, 6, 6)).astype(np.float32),
         x_test=rng.normal(size=(12, 1, 6, 6)).astype(np.float32))
    assert dataset_info("npz:nchw.npz", tmp_path) == (1, 4, 6)
    _npz(tmp_path / "gray.npz", x_train=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
         x_test=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
         x_val=rng.integers(0, 256, (5, 8, 8), dtype=np.uint8), y_val=np.arange(5) % 4)
    s = load_dataset("npz:gray.npz", tmp_path)
    assert (len(s.train_x), len(s.val_x), s.train_x.shape[1:]) == (40, 5, (1, 8, 8))


@pytest.mark.parametrize("arrays, pattern", [
    ({"y_test": None}, r"missing arrays y_test \(has x_test, x_train, y_train"),
    ({"x_val": np.zeros((2, 10, 10, 3), np.uint8)}, r"missing arrays y_val"),
    ({"y_train": np.arange(40) % 4 + 1}, r"no example of class 0 \(labels look 1-based"),
    ({"y_train": -(np.arange(40) % 4)}, r"y_train has negative labels"),
    ({"y_test": np.arange(12) % 4 + 7}, r"K=11 classes, but y_train has no example of class 4"),
    ({"y_train": np.arange(39) % 4}, r"y_train has 39 labels but the images have 40"),
    ({"y_train": (np.arange(40) % 4) + 0.5}, r"y_train holds non-integer labels"),
    ({"x_test": np.zeros((12, 9, 9, 3), np.uint8)}, r"image shapes differ between splits"),
    ({"x_train": np.zeros((40, 10, 7), np.uint8)}, r"x_train images are 10x7; only square"),
    ({"x_train": np.full((40, 10, 10), np.nan)}, r"x_train contains NaN or inf"),
    ({"x_train": np.zeros((40, 5, 10, 10, 3))}, r"x_train has shape \(40, 5, 10, 10, 3\)"),
])
def test_npz_errors_name_the_file_and_the_problem(tmp_path, arrays, pattern):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=pattern) as err:
        load_dataset("npz:bad.npz", tmp_path)
    assert str(path) in str(err.value)


def test_npz_with_pickled_objects_is_refused_and_not_a_zip_is_reported(tmp_path):
    np.savez(tmp_path / "obj.npz", x_train=np.array([{"a": 1}], dtype=object),
             y_train=np.zeros(1), x_test=np.zeros(1), y_test=np.zeros(1))
    with pytest.raises(DatasetError, match=r"obj\.npz: holds object \(pickled\) arrays"):
        load_dataset("npz:obj.npz", tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"PK not really")
    with pytest.raises(DatasetError, match=r"junk\.npz: not a readable \.npz"):
        load_dataset("npz:junk.npz", tmp_path)
    with pytest.raises(DatasetError, match=r"missing\.npz: no such file"):
        load_dataset("npz:missing.npz", tmp_path)


# --------------------------------------------------------------------------- through the worker



def test_folder_dataset_trains_in_the_contained_worker(pool, tmp_path):
    src = make_folder(tmp_path / "pets", n=12)
    cfg = EvalConfig(dataset=f"folder:{src}?size=8", data_root=str(tmp_path), max_steps=3,
                     batch_size=8)
    evaluation = pool.submit(NET, cfg).result()
    assert evaluation.status == "ok", (evaluation.reason, evaluation.output)
    assert 0.0 <= evaluation.val_acc <= 1.0


def test_npz_outside_the_data_root_trains_in_the_contained_worker(pool, tmp_path):
    outside = tmp_path / "home"
    outside.mkdir()
    path = _npz(outside / "arrays.npz")
    root = tmp_path / "root"
    root.mkdir()
    cfg = EvalConfig(dataset=f"npz:{path}", data_root=str(root), max_steps=2, batch_size=8)
    evaluation = pool.submit(NET, cfg).result()
    assert evaluation.status == "ok", (evaluation.reason, evaluation.output)


# --------------------------------------------------------------------------- MNIST family

def _idx(path: Path, arr: np.ndarray, magic: bytes | None = None, compress=True) -> None:
    header = (magic or b"\0\0\x08" + bytes([arr.ndim])) + struct.pack(f">{arr.ndim}I",
                                                                      *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)


def _mnist_dir(folder: Path, compress=True) -> None:
    rng = np.random.default_rng(0)
    sfx = ".gz" if compress else ""
    _idx(folder / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (30, 28, 28)),
         compress=compress)
    _idx(folder / f"train-labels-idx1-ubyte{sfx}", np.arange(30) % 10, compress=compress)
    _idx(folder / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (10, 28, 28)),
         compress=compress)
    _idx(folder / f"t10k-labels-idx1-ubyte{sfx}", np.arange(10) % 10, compress=compress)


@pytest.mark.parametrize("sub, compress", [("mnist", True), ("MNIST/raw", False)])
def test_mnist_idx_files_under_the_data_root(tmp_path, sub, compress):
    _mnist_dir(tmp_path / sub, compress)
    s = load_dataset("mnist", tmp_path)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (27, 3, 10)
    assert s.train_x.shape[1:] == (1, 28, 28) and dataset_info("mnist") == (1, 10, 28)
    assert get_spec("mnist").flip is False and get_spec("fashion-mnist").flip is True


def test_mnist_missing_or_malformed_idx(tmp_path, monkeypatch):
    monkeypatch.setitem(du.SYSTEM_DIRS, "mnist", ())
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.* not found in "
                                           r".*/mnist.*pass --download"):
        load_dataset("mnist", tmp_path)
    _mnist_dir(tmp_path / "mnist")
    bad = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    _idx(bad, np.arange(30) % 10, magic=b"\0\0\x0d\x01")
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: not an idx file"):
        load_dataset("mnist", tmp_path)
    bad.write_bytes(gzip.compress(b"\0\0\x08\x01" + struct.pack(">I", 30) + bytes(12)))
    with pytest.raises(DatasetError, match=r"need 30 bytes, file has 12 \(truncated"):
        load_dataset("mnist", tmp_path)
    bad.write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: cannot read"):
        load_dataset("mnist", tmp_path)


FASHION = du.SYSTEM_DIRS["fashion-mnist"][0]
needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real Fashion-MNIST absent: apt-get install dataset-fashion-mnist (installs "
           f"{FASHION})")


@needs_fashion
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("ARCHLORE_DATA", raising=False)
    check_available("fashion-mnist", None)
    s = load_dataset("fashion-mnist")
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (54000, 6000, 10000)
    assert np.bincount(s.test_y).tolist() == [1000] * 10
    assert s.train_x.shape[1:] == (1, 28, 28)


@needs_fashion
def test_real_fashion_mnist_trains_in_the_contained_worker(pool):
    evaluation = pool.submit(NET, EvalConfig(dataset="fashion-mnist", max_steps=5,
                                             batch_size=64)).result()
    assert evaluation.status == "ok", (evaluation.reason, evaluation.output)
    assert 0.0 <= evaluation.test_acc <= 1.0
