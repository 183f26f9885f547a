"""Objectives: the named measurements a run optimises (``--objectives val_acc,macs``).

An ``Objective`` says how to read its value from an ``Evaluation`` (``Evaluation.metric``), in
which direction it is better, its display unit, and which of an idea's expected effects
predicts it. Registered like strategies and spaces (``list_objectives()``); a table backend's
own metric can be named ad hoc as ``NAME:min`` / ``NAME:max``.

Values are kept in the evaluator's raw units (accuracy as a fraction, MACs and parameters as
counts, latency in milliseconds); ``scale`` and ``unit`` only serve display and goal budgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from archlore.evaluator.records import Evaluation
from archlore.search.registry import OBJECTIVES


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Literal["max", "min"]
    unit: str  # display unit after ``scale``
    scale: float  # display value = raw value x scale
    measured: str  # how the evaluator measures it (docs, reports)
    effect: str | None = None  # Idea.effect field that predicts it (accuracy / macs / params)
    ideal: float | None = None  # best possible raw value (hypervolume box), None = unknown

    @property
    def maximise(self) -> bool:
        return self.direction == "max"

    def value(self, ev: Evaluation | None) -> float | None:
        return None if ev is None else ev.metric(self.name)

    def minimised(self, raw: float) -> float:
        """The value in minimisation form (what Pareto code works on)."""
        return -raw if self.maximise else raw

    def display(self, raw: float | None, digits: int = 3) -> str:
        if raw is None:
            return "-"
        return f"{raw * self.scale:.{digits}f} {self.unit}".strip()

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name


def register_objective(obj: Objective) -> Objective:
    OBJECTIVES.register(obj.name)(obj)
    return obj


def get_objective(name: str) -> Objective:
    """A registered objective, or an ad-hoc one spelled ``NAME:min`` / ``NAME:max``."""
    if ":" in name:
        metric, _, direction = name.partition(":")
        if direction not in ("min", "max") or not metric:
            raise ValueError(f"objective {name!r}: write NAME:min or NAME:max")
        return Objective(metric, direction, "", 1.0, f"the backend's {metric!r} metric")  # type: ignore[arg-type]
    try:
        return OBJECTIVES.get(name)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]}; a backend's own metric: NAME:min or NAME:max") from None


def get_objectives(names: list[str]) -> list[Objective]:
    return [get_objective(n) for n in names]


VAL_ACC = register_objective(Objective(
    "val_acc", "max", "%", 100.0, "top-1 accuracy on the validation split after the recipe's "
    "training (computed by the parent from the worker's predictions)", "accuracy", 1.0))
MACS = register_objective(Objective(
    "macs", "min", "MMACs", 1e-6, "multiply-accumulates per image, counted before training "
    "(torch FlopCounterMode / 2)", "macs", 0.0))
PARAMS = register_objective(Objective(
    "params", "min", "M params", 1e-6, "trainable parameter count", "params", 0.0))
LATENCY = register_objective(Objective(
    "latency_ms", "min", "ms", 1.0, "forward latency per image at batch 1 on the evaluation "
    "device: median of repeated timed runs after warm-up", "macs", 0.0))
LATENCY_BATCH = register_objective(Objective(
    "latency_batch_ms", "min", "ms", 1.0, "forward latency per image at the training batch "
    "size on the evaluation device (median after warm-up)", "macs", 0.0))
