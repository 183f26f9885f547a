"""Records exchanged with the evaluator: what to evaluate (EvalConfig) and what came out (Evaluation).

Units: ``macs`` are multiply-accumulates per image (torch's FlopCounterMode counts 2 FLOPs per
MAC; we divide by 2). ``params`` is a plain count. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "rejected", "failed", "timeout"]
# "data": loading the dataset failed (missing files); added after the first contract, compatibly.
Stage = Literal["policy", "data", "build", "shape", "cost", "train", "eval", "worker"]


class Recipe(BaseModel):
    """The proxy-training recipe: the one source of default training settings for
    ``archlore search``, ``evaluate`` and ``ask`` (a front model's header records it, so
    ``archlore evaluate`` with that recipe reproduces the run's numbers)."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(4.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    max_train_seconds: float | None = Field(None, gt=0)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.05, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)

    def recipe(self) -> Recipe:
        """Just the recipe fields (also of an ``EvalConfig``)."""
        return Recipe(**{k: getattr(self, k) for k in Recipe.model_fields})


class EvalConfig(Recipe):
    """How to score one candidate: a recipe plus where and under which limits. Everything a
    worker needs; nothing else."""

    model_config = ConfigDict(extra="ignore")

    seed: int = 0
    dataset: str = "digits"
    data_root: str | None = None  # directory holding cifar10/cifar100/imagenet16 files
    device: str = "auto"  # "cpu", "cuda", "cuda:1", "auto"
    max_mmacs: float | None = None  # cap in millions of MACs per image
    max_params: int | None = None
    static_policy: bool = True  # tests turn it off to probe the OS layer alone
    timeout_s: float = 300.0  # wall clock for the whole worker
    memory_mb: int = 6144  # address-space limit of the worker
    cpu_threads: int = 1
    max_output_bytes: int = 64_000
    # cost stage: time the forward at batch 1 and at the training batch (metrics latency_ms,
    # latency_batch_ms) and cross-check the time against the counted work
    measure_latency: bool = True


_FIELD_METRICS = ("val_acc", "test_acc", "macs", "params", "train_seconds", "throughput")


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
    # Further named measurements (e.g. "latency_ms": per image at batch 1, median), keyed by
    # objective name; ``metric(name)`` also answers the fields above by name.
    metrics: dict[str, float] = Field(default_factory=dict)
    # Which machine/backend scored it (e.g. "pool", "ray:10.0.0.5"), for reports.
    scored_by: str = ""

    def metric(self, name: str) -> float | None:
        """A measurement by objective name: ``val_acc``, ``test_acc``, ``macs``, ``params``,
        ``train_seconds``, ``throughput`` or any key of ``metrics``; None if not measured."""
        if name in _FIELD_METRICS:
            value = getattr(self, name)
            return None if value is None else float(value)
        return self.metrics.get(name)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def mmacs(self) -> float | None:
        return None if self.macs is None else self.macs / 1e6
