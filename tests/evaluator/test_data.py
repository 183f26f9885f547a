"""Dataset loaders on real (digits) and tiny generated files in the standard formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from archlore.evaluator import EvalConfig, dataset_info, evaluate, list_datasets
from archlore.evaluator.data import DatasetError, list_dataset_families, load_dataset


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.fixture()
def data_root(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(1, 6):  # CIFAR-10: bytes keys, as the python-2 pickles load in python 3
        _write(tmp_path / "cifar-10-batches-py" / f"data_batch_{i}",
               {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                b"labels": list(rng.integers(0, 10, 20))})
    _write(tmp_path / "cifar-10-batches-py" / "test_batch",
           {b"data": rng.integers(0, 256, (30, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, 30))})
    for name, n in (("train", 60), ("test", 25)):
        _write(tmp_path / "cifar-100-python" / name,
               {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"fine_labels": list(rng.integers(0, 100, n)),
                b"coarse_labels": list(rng.integers(0, 20, n))})
    for i in range(1, 11):  # NB201 ImageNet16: str keys, labels 1..1000
        _write(tmp_path / "ImageNet16" / f"train_data_batch_{i}",
               {"data": rng.integers(0, 256, (30, 768), dtype=np.uint8),
                "labels": list(rng.integers(1, 241, 30))})
    _write(tmp_path / "ImageNet16" / "val_data",
           {"data": rng.integers(0, 256, (40, 768), dtype=np.uint8),
            "labels": list(rng.integers(1, 241, 40))})
    return tmp_path


def test_registry_and_info():
    assert {"digits", "synthetic", "cifar10", "cifar100", "imagenet16-120", "mnist",
            "fashion-mnist"} <= set(list_datasets())
    assert list_dataset_families() == ["folder:PATH", "npz:FILE"]
    assert dataset_info("digits") == (1, 10, 8)
    assert dataset_info("cifar100") == (3, 100, 32)
    assert dataset_info("imagenet16-120") == (3, 120, 16)
    assert dataset_info("fashion-mnist") == dataset_info("mnist") == (1, 10, 28)
    with pytest.raises(DatasetError, match="unknown dataset 'emnist'; known: .*folder:PATH"):
        dataset_info("emnist")


def test_digits_fixed_disjoint_normalised_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    sizes = (len(a.train_x), len(a.val_x), len(a.test_x))
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 269
    assert np.array_equal(a.val_x, b.val_x)
    assert a.train_x.shape[1:] == (1, 8, 8) and a.train_x.dtype == np.float32
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-2
    rows = {x.tobytes() for x in a.train_x}
    assert not any(x.tobytes() in rows for x in a.test_x if x.any())


def test_cifar10_format(data_root):
    s = load_dataset("cifar10", data_root)
    assert s.train_x.shape == (90, 3, 32, 32) and len(s.val_x) == 10 and len(s.test_x) == 30
    assert s.num_classes == 10 and s.train_y.max() < 10


def test_cifar100_format(data_root):
    s = load_dataset("cifar100", data_root)
    assert s.num_classes == 100 and len(s.train_x) + len(s.val_x) == 60 and len(s.test_x) == 25


def test_imagenet16_120_keeps_first_120_classes(data_root):
    s = load_dataset("imagenet16-120", data_root)
    assert s.train_x.shape[1:] == (3, 16, 16)
    assert 0 <= s.train_y.min() and max(s.train_y.max(), s.val_y.max(), s.test_y.max()) < 120
    assert len(s.train_x) < 300  # labels 121..240 were dropped


def test_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-batches-py/data_batch_1"):
        load_dataset("cifar10", tmp_path)
    evaluation = evaluate("import torch\nclass Net(torch.nn.Module):\n    pass\n",
                          EvalConfig(dataset="cifar100", data_root=str(tmp_path)))
    assert (evaluation.status, evaluation.stage) == ("failed", "data")
    assert "cifar-100-python/train" in evaluation.reason


def test_worker_reads_user_data_root_under_containment(pool, data_root):
    code = (
        "import torch\nfrom torch import nn\nclass Net(nn.Module):\n"
        "    def __init__(self, num_classes, in_channels):\n        super().__init__()\n"
        "        self.fc = nn.Linear(in_channels, num_classes)\n"
        "    def forward(self, x):\n        return self.fc(x.mean(dim=(2, 3)))\n")
    cfg = EvalConfig(dataset="imagenet16-120", data_root=str(data_root), max_steps=2,
                     batch_size=16)
    evaluation = pool.submit(code, cfg).result()
    assert evaluation.status == "ok", (evaluation.reason, evaluation.output)
    assert 0.0 <= evaluation.val_acc <= 1.0


def test_relative_data_root_is_resolved_before_the_worker_changes_directory(
        pool, data_root, monkeypatch):
    """The worker runs in its own directory, so a relative --data-root must be made absolute
    in the parent (where it was checked), not re-read relative to the worker's directory."""
    code = (
        "import torch\nfrom torch import nn\nclass Net(nn.Module):\n"
        "    def __init__(self, num_classes, in_channels):\n        super().__init__()\n"
        "        self.fc = nn.Linear(in_channels, num_classes)\n"
        "    def forward(self, x):\n        return self.fc(x.mean(dim=(2, 3)))\n")
    monkeypatch.chdir(data_root.parent)
    cfg = EvalConfig(dataset="cifar10", data_root=data_root.name, max_steps=2, batch_size=16)
    evaluation = pool.submit(code, cfg).result()
    assert evaluation.status == "ok", (evaluation.reason, evaluation.output)
