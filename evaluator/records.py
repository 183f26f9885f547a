"""Records exchanged with the evaluator: what to evaluate (EvalConfig) and what came out (Evaluation).

Units: ``macs`` are multiply-accumulates per image (torch's FlopCounterMode counts 2 FLOPs per
MAC; we divide by 2). ``params`` is a plain count. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "rejected", "failed", "timeout"]
# "data": loading the dataset failed (missing files); added after the first contract, compatibly.
Stage = Literal["policy", "data", "build", "shape", "cost", "train", "eval", "worker"]


class EvalConfig(BaseModel):
    """How to score one candidate. Everything a worker needs; nothing else."""

    dataset: str = "digits"
    data_root: str | None = None  # directory holding cifar10/cifar100/imagenet16 files
    epochs: float = 3.0
    max_steps: int | None = None
    max_train_seconds: float | None = None
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"  # "cpu", "cuda", "cuda:1", "auto"
    max_mmacs: float | None = None  # cap in millions of MACs per image
    max_params: int | None = None
    static_policy: bool = True  # tests turn it off to probe the OS layer alone
    timeout_s: float = 300.0  # wall clock for the whole worker
    memory_mb: int = 6144  # address-space limit of the worker
    cpu_threads: int = 1
    max_output_bytes: int = 64_000


class StageTiming(BaseModel):
    stage: Stage
    seconds: float
    ok: bool


class Evaluation(BaseModel):
    """Outcome of the evaluation cascade for one candidate."""

    status: Status
    stage: Stage  # the last stage reached (where it stopped, or "eval" when ok)
    reason: str = ""
    val_acc: float | None = None
    test_acc: float | None = None
    macs: int | None = None  # MACs per image
    params: int | None = None
    train_seconds: float | None = None
    throughput: float | None = None  # training images per second
    loss_curve: list[float] = Field(default_factory=list)
    seed: int = 0
    dataset: str = "digits"
    timings: list[StageTiming] = Field(default_factory=list)
    output: str = ""  # captured (bounded) stdout/stderr of the worker
    # Seconds from asking for a worker to the worker running (fork from the preloaded server).
    startup_seconds: float | None = None
    # What OS-level containment the worker actually applied, e.g. "landlock: ABI 7 (...)".
    containment: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def mmacs(self) -> float | None:
        return None if self.macs is None else self.macs / 1e6
