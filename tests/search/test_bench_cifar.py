"""benchmarks/bench_cifar.py: the CIFAR-10 subset, the reusing pool backend, the summary."""

from __future__ import annotations

import importlib.util
import pickle
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from archlore.evaluator.data import DatasetError, get_spec, load_dataset
from archlore.evaluator.records import EvalConfig, Evaluation

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cifar.py"
_spec = importlib.util.spec_from_file_location("bench_cifar", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _fake_cifar(root: Path, per_batch: int = 400, test: int = 60) -> Path:
    """A tiny cifar-10-batches-py in the official pickle layout (labels cycle 0..9)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n: int, offset: int) -> dict:
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"labels": [(offset + i) % 10 for i in range(n)]}

    for i in range(1, 6):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per_batch, 3 * i), f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(batch(test, 7), f)
    return root


def test_subset_is_balanced_and_drawn_from_the_loaders_own_splits(tmp_path):
    root = _fake_cifar(tmp_path)
    full = load_dataset("cifar10", root)  # 1800 train / 200 val / 60 test
    sub = bench.cifar_subset(root, 100, 20, 30, size=32)
    for split, n in (("train", 100), ("val", 20), ("test", 30)):
        x, y = sub[f"x_{split}"], sub[f"y_{split}"]
        assert x.shape == (n, 3, 32, 32) and x.dtype == np.float32
        assert np.bincount(y, minlength=10).tolist() == [n // 10] * 10
    # every subset image is an image of the same split of the full dataset (by content)
    for split, src in (("train", full.train_x), ("val", full.val_x), ("test", full.test_x)):
        rows = {a.tobytes() for a in src}
        assert all(a.tobytes() in rows for a in sub[f"x_{split}"])
    train_rows = {a.tobytes() for a in full.train_x}
    assert not any(a.tobytes() in train_rows for a in sub["x_val"])  # val never a train image


def test_subset_at_16px_loads_as_an_npz_dataset_with_scaled_augmentation(tmp_path):
    root = _fake_cifar(tmp_path)
    path = bench.write_subset(root, tmp_path / "sub.npz", 50, 10, 20, size=16)
    spec = get_spec(f"npz:{path}")
    assert (spec.in_channels, spec.num_classes, spec.image_size) == (3, 10, 16)
    assert spec.flip and spec.pad == 2  # cifar10's 4-pixel crop padding at half the size
    s = load_dataset(f"npz:{path}")
    assert s.train_x.shape == (50, 3, 16, 16) and len(s.val_y) == 10 and len(s.test_y) == 20
    assert abs(float(s.train_x.mean())) < 1e-4  # re-standardised with the subset's statistics


def test_missing_cifar_names_the_files(tmp_path):
    with pytest.raises(DatasetError, match="data_batch_1"):
        bench.cifar_subset(tmp_path, 10, 10, 10)


def test_balanced_fills_up_in_order_and_refuses_too_many():
    y = np.array([0, 1, 0, 1, 0, 0, 2])
    assert bench._balanced(y, 3, 3).tolist() == [0, 1, 6]
    assert bench._balanced(y, 5, 3).tolist() == [0, 1, 2, 3, 6]  # 1 per class, then in order
    with pytest.raises(ValueError):
        bench._balanced(y, 8, 3)


def test_downsample_averages_blocks():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    assert bench.downsample(x, 2)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert bench.downsample(x, 4) is x
    with pytest.raises(ValueError):
        bench.downsample(x, 3)


class _FakePool:
    def __init__(self, status: str = "ok"):
        self.calls: list[tuple[str, int]] = []
        self.status = status
        self.closed = False

    def submit(self, code: str, cfg: EvalConfig) -> Future:
        self.calls.append((code, cfg.seed))
        fut: Future = Future()
        fut.set_result(Evaluation(status=self.status, stage="eval", val_acc=0.5, seed=cfg.seed))
        return fut

    def close(self) -> None:
        self.closed = True


def test_shared_pool_reuses_only_the_same_code_recipe_and_seed():
    pool = _FakePool()
    shared = bench.SharedPool(pool, workers=2)
    a = shared.submit_code("A", EvalConfig(seed=0, epochs=3))
    assert shared.submit_code("A", EvalConfig(seed=0, epochs=3, timeout_s=9)) is a
    shared.submit_code("A", EvalConfig(seed=1, epochs=3))
    shared.submit_code("A", EvalConfig(seed=0, epochs=2))
    shared.submit_code("B", EvalConfig(seed=0, epochs=3))
    assert len(pool.calls) == 4 and (shared.trained, shared.reused) == (4, 1)
    shared.close(cancel=True)  # a run's close leaves the shared pool running
    assert not pool.closed
    shared.shutdown()
    assert pool.closed


def test_shared_pool_retrains_a_timed_out_evaluation():
    pool = _FakePool(status="timeout")
    shared = bench.SharedPool(pool, workers=1)
    shared.submit_code("A", EvalConfig())
    shared.submit_code("A", EvalConfig())
    assert len(pool.calls) == 2 and shared.reused == 0


def test_latency_of_a_reference_and_thread_count_restored():
    import torch
    from archlore.search.spaces.references import reference_code

    before = torch.get_num_threads()
    ms = bench.latency_ms(reference_code("resnet20"), 3, 10, 16, reps=3, warmup=1)
    assert 0 < ms < 5000 and torch.get_num_threads() == before


def _row(method, seed, i, acc, macs):
    return {"method": method, "seed": seed, "id": i, "val_acc": acc, "test_acc": acc,
            "macs": macs, "params": 10, "train_s": 1.0, "latency_ms": 0.5, "ok": True}


def test_pooled_front_seed_noise_and_summary():
    rows = [_row("fairnad", 0, 1, 0.4, 2e6), _row("fairnad", 1, 2, 0.5, 3e6),
            _row("fairnad", 1, 3, 0.3, 3.5e6)]
    assert [r["id"] for r in bench.pooled_front(rows)] == [1, 2]
    noise, n = bench.seed_noise([("A", 0, 0.40), ("A", 1, 0.44), ("B", 0, 0.3)])
    assert n == 1 and noise == pytest.approx(np.std([0.40, 0.44], ddof=1))
    text = bench.summarise([], {"fairnad": rows, "random": [_row("random", 0, 1, 0.4, 2e6),
                                                            _row("random", 1, 1, 0.4, 2e6)]},
                           {"fairnad": [0.3, 0.4], "random": [0.35, 0.35]}, "head", (noise, n),
                           {"fairnad": [0.33, 0.36]})
    assert "hypervolume ratio FairNAD / random: 1.000" in text
    assert "per seed 0.857, 1.143" in text and "best val acc 40.0, 50.0 %" in text
    assert "mean val acc of its candidates 33.0, 36.0 %" in text


@pytest.mark.slow
def test_benchmark_end_to_end_on_a_tiny_fake_cifar(tmp_path):
    root = _fake_cifar(tmp_path / "data", per_batch=100, test=40)
    out = tmp_path / "out"
    bench.main(["--data-root", str(root), "--n-train", "100", "--n-val", "10", "--n-test", "20",
                "--epochs", "0.2", "--budget", "2", "--seeds", "1", "--workers", "1",
                "--max-mflops", "1", "--references", "resnet20", "--strategies", "random,rea",
                "--out", str(out), "--work", str(tmp_path / "work")])
    text = (out / "summary.md").read_text()
    assert "| resnet20 (reference) |" in text and "- random: hypervolume" in text
    assert "- rea: hypervolume" in text and "reused evaluations" in text
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("method,seed,id") and any(r.startswith("reference,") for r in rows)
    assert not list(out.glob("*.npz"))  # the data subset goes to the work directory
    assert (tmp_path / "work" / "cifar10-subset.npz").is_file()
