"""Evaluator benchmarks, one command: ``python benchmarks/bench_evaluator.py [--device cuda]``.

(a) overhead: one candidate scored through the whole cascade (policy, contained worker, data,
    build, shape, MACs, training, val+test accuracy) vs a bare in-process PyTorch loop doing the
    same work (same net, data, steps, augmentation, optimizer, val+test accuracy), measured
    alternately in one run; ratio excludes worker start-up, which is reported separately.
(b) candidates scored per minute on digits with 2 workers.
(c) ``--device cuda``: CIFAR-shaped synthetic data (3x32x32, 50,000 training images), a
    ~50 MMAC net for one epoch: images/s and seconds to score.
Threads: 1 per worker (EvalConfig.cpu_threads) and 1 for the bare loop.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archlore.evaluator import EvalConfig, EvaluatorPool  # noqa: E402
from archlore.evaluator.data import get_spec, load_dataset  # noqa: E402
from archlore.evaluator.sandbox import warm_up  # noqa: E402
from archlore.evaluator.train import augment  # noqa: E402

EXAMPLE = (ROOT / "examples" / "resnet_tiny.py").read_text()

NET_50M = '''
import torch
from torch import nn


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Net(nn.Module):
    """~48 MMACs per 3x32x32 image."""

    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(in_channels, 32), conv_bn(32, 32), conv_bn(32, 32),
            conv_bn(32, 64, 2), conv_bn(64, 64),
            conv_bn(64, 128, 2), conv_bn(128, 128),
        )
        self.head = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))
'''


def bare_loop(code: str, dataset: str, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """The same work as the cascade, in-process with no sandbox: returns wall seconds."""
    start = time.perf_counter()
    spec = get_spec(dataset)
    data = load_dataset(dataset)
    x, y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
    namespace = types.ModuleType("bench_candidate").__dict__
    exec(compile(code, "bench_candidate.py", "exec"), namespace)  # trusted benchmark code
    torch.manual_seed(seed)
    model = namespace["Net"](num_classes=data.num_classes, in_channels=spec.in_channels)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    warm = max(1, steps // 5)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / (steps - warm)))
    gen = torch.Generator().manual_seed(seed)
    n, pad = len(x), spec.pad
    per_epoch = n // batch_size
    model.train()
    for step in range(steps):
        if step % per_epoch == 0:
            perm = torch.randperm(n, generator=gen)
        idx = perm[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size]
        xb = augment(x[idx], pad, spec.flip, gen)  # the same per-image crop as the cascade
        loss = F.cross_entropy(model(xb), y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        for vx, vy in ((data.val_x, data.val_y), (data.test_x, data.test_y)):
            (model(torch.from_numpy(vx)).argmax(1) == torch.from_numpy(vy)).float().mean().item()
    return time.perf_counter() - start


def overhead(pool: EvaluatorPool, repeats: int, epochs: float) -> None:
    cfg = EvalConfig(dataset="digits", epochs=epochs, cpu_threads=1, seed=0)
    spec_n = len(load_dataset("digits").train_x)
    steps = math.ceil(epochs * (spec_n // cfg.batch_size))
    torch.set_num_threads(1)
    cascade, bare, startups, stages, costs, latency = [], [], [], [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        ev = pool.submit(EXAMPLE, cfg).result()
        wall = time.perf_counter() - t
        assert ev.status == "ok", ev.reason
        startups.append(ev.startup_seconds or 0.0)
        cascade.append(wall - (ev.startup_seconds or 0.0))
        stages.append(sum(s.seconds for s in ev.timings))
        costs.append(sum(s.seconds for s in ev.timings if s.stage == "cost"))
        latency.append((ev.metrics["latency_ms"], ev.metrics["latency_batch_ms"]))
        bare.append(bare_loop(EXAMPLE, "digits", steps, cfg.batch_size, cfg.lr, cfg.seed))
    c, b = statistics.median(cascade), statistics.median(bare)
    print(f"\n(a) evaluator overhead — examples/resnet_tiny.py on digits, {steps} steps, "
          f"batch {cfg.batch_size}, 1 thread, median of {repeats}")
    print(f"    {'bare PyTorch loop (train + val/test acc)':<48} {b:7.3f} s")
    print(f"    {'cascade, excluding worker start-up':<48} {c:7.3f} s")
    print(f"    {'  of which inside the worker (sum of stages)':<48} "
          f"{statistics.median(stages):7.3f} s")
    print(f"    {'  of which the cost stage (counts + latency)':<48} "
          f"{statistics.median(costs):7.3f} s")
    print(f"    {'ratio cascade / bare (target <= 1.10)':<48} {c / b:7.3f} x")
    print(f"    {'latency per image, batch 1 / batch ' + str(cfg.batch_size):<48} "
          f"{statistics.median(x[0] for x in latency):7.3f} ms / "
          f"{statistics.median(x[1] for x in latency):.4f} ms")
    print(f"    {'worker start-up (fork from preloaded zygote)':<48} "
          f"{statistics.median(startups) * 1000:7.1f} ms")


def throughput(pool: EvaluatorPool, candidates: int, epochs: float) -> None:
    widths = [8, 12, 16, 24, 32, 16, 8, 24][:candidates]
    codes = [EXAMPLE.replace("width: int = 32", f"width: int = {w}") for w in widths]
    cfg = EvalConfig(dataset="digits", epochs=epochs, cpu_threads=1)
    t = time.perf_counter()
    results = [f.result() for f in [pool.submit(code, cfg) for code in codes]]
    minutes = (time.perf_counter() - t) / 60
    ok = sum(r.ok for r in results)
    accs = [r.val_acc for r in results if r.ok]
    print(f"\n(b) throughput — {len(codes)} candidates (resnet_tiny widths {widths}), digits, "
          f"{epochs:g} epochs, 2 workers x 1 thread")
    print(f"    {ok}/{len(codes)} ok, val acc {statistics.mean(accs):.3f} ± "
          f"{statistics.pstdev(accs):.3f}, wall {minutes * 60:.1f} s")
    print(f"    candidates scored per minute: {len(codes) / minutes:.1f}")


def gpu(epochs: float, batch_size: int) -> None:
    cfg = EvalConfig(dataset="synthetic-cifar", epochs=epochs, batch_size=batch_size, lr=0.2,
                     device="cuda", timeout_s=600)
    with EvaluatorPool(workers=1) as pool:
        t = time.perf_counter()
        ev = pool.submit(NET_50M, cfg).result()
        wall = time.perf_counter() - t
    print(f"\n(c) GPU — {torch.cuda.get_device_name(0)}; synthetic-cifar 3x32x32, 50,000 "
          f"training images, {epochs:g} epoch(s), batch {batch_size}, bf16 + channels_last")
    print(f"    status {ev.status} {ev.reason}")
    if not ev.ok:
        print(ev.output[-4000:], "\n".join(ev.containment))
        return
    print(f"    MACs per image {ev.macs and ev.macs / 1e6:.1f} M, params {ev.params:,}")
    print(f"    training images/s {ev.throughput:,.0f}; train seconds {ev.train_seconds:.2f}")
    print("    stage seconds: " + ", ".join(f"{s.stage} {s.seconds:.2f}" for s in ev.timings))
    print(f"    seconds to score (excl. start-up {ev.startup_seconds:.3f} s): "
          f"{wall - (ev.startup_seconds or 0):.2f}; val acc {ev.val_acc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gpu-only", action="store_true", help="only (c)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-epochs", type=float, default=20)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--epochs", type=float, default=3, help="epochs per candidate in (b)")
    parser.add_argument("--gpu-epochs", type=float, default=1)
    parser.add_argument("--gpu-batch", type=int, default=512)
    args = parser.parse_args()
    if not args.gpu_only:
        t = time.perf_counter()
        warm_up()
        print(f"zygote start-up (python + torch import, once per pool): "
              f"{time.perf_counter() - t:.2f} s")
        with EvaluatorPool(workers=2, devices=["cpu"]) as pool:
            overhead(pool, args.repeats, args.overhead_epochs)
            throughput(pool, args.candidates, args.epochs)
    if args.device == "cuda":
        gpu(args.gpu_epochs, args.gpu_batch)


if __name__ == "__main__":
    main()
