"""One validated configuration for a search run: embedded defaults < config file < CLI.

``SearchConfig`` is what ``archlore search`` runs on; the effective config (after the file
and the CLI overrides) is saved in the run store, and ``--resume`` reads it back from there.
The defaults are the main job: digits, the offline mutator, the built-in corpus, 2 workers,
sized to finish in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from archlore.evaluator.records import EvalConfig, Recipe
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class EvaluationSettings(BaseModel):
    """Where and under which limits candidates are scored."""

    model_config = ConfigDict(extra="forbid")

    backend: str | None = None  # pool | table | ray; None = the space's default
    workers: int = Field(2, ge=1)  # evaluation slots on this machine (pool); per node (ray)
    devices: list[str] = Field(default_factory=lambda: ["cpu"])
    timeout_s: float = Field(120.0, gt=0)  # wall clock per candidate
    ray_address: str | None = None  # ray: "auto", "HOST:PORT", None = start Ray locally
    max_retries: int = Field(2, ge=0)  # ray: resubmissions after a node/actor loss


class LLMSettings(BaseModel):
    """Which mutator proposes children: ``offline`` (no LLM) or an LLM backend."""

    model_config = ConfigDict(extra="forbid")

    backend: str = "offline"  # offline | openai | replay | scripted
    model: str | None = None
    base_url: str | None = None
    mode: str | None = None  # delta | full | structured
    record: str | None = None  # cassette to write
    cassette: str | None = None  # replay: cassette to read
    max_total_tokens: int | None = Field(None, ge=0)
    max_cost_usd: float | None = Field(None, ge=0)
    context_tokens: int | None = Field(None, ge=256)
    extra: dict[str, Any] = Field(default_factory=dict)  # further backend/mutator options

    def mutator_options(self) -> dict[str, Any]:
        """Keyword arguments for ``agent.mutators.make_mutator`` (None values dropped)."""
        opts = {k: v for k, v in self.model_dump(exclude={"backend", "extra"}).items()
                if v is not None}
        return {**opts, **self.extra}


class NoveltySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.9, gt=0, le=1)  # MinHash Jaccard above which a child is a dup
    shingle: int = Field(5, ge=1)


class FidelitySettings(BaseModel):
    """Multi-fidelity (ASHA) promotion: every candidate is trained for ``rungs[0]`` epochs; the
    best ``1/reduction`` of each rung (Pareto rank over the run's objectives) are trained again
    for the next rung's epochs. ``rungs=None``: single fidelity (``recipe.epochs``)."""

    model_config = ConfigDict(extra="forbid")

    rungs: list[float] | None = None  # epochs per rung, strictly increasing
    reduction: int = Field(3, ge=2)  # eta: 1 in `reduction` of a rung is promoted

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) < 2 or any(e <= 0 for e in v) or any(v[i + 1] <= v[i] for i in range(len(v) - 1)):
            raise ValueError(f"rungs must be two or more increasing positive epochs, got {v}")
        return v


class ProxyCheckSettings(BaseModel):
    """The cheap proxy-reliability check recorded by every proxy-scored search: ``candidates``
    valid candidates re-scored with seed ``seed + seed_offset`` after the search (0 = off)."""

    model_config = ConfigDict(extra="forbid")

    candidates: int = Field(4, ge=0)
    seed_offset: int = Field(1, ge=1)


# Flat keys of the first config format, still accepted (files, --set, saved runs).
_LEGACY = {
    "epochs": ("recipe", "epochs"), "max_steps": ("recipe", "max_steps"),
    "batch_size": ("recipe", "batch_size"), "lr": ("recipe", "lr"),
    "weight_decay": ("recipe", "weight_decay"), "label_smoothing": ("recipe", "label_smoothing"),
    "workers": ("evaluation", "workers"), "devices": ("evaluation", "devices"),
    "eval_timeout_s": ("evaluation", "timeout_s"), "backend": ("evaluation", "backend"),
    "ray_address": ("evaluation", "ray_address"),
    "model": ("llm", "model"),
    "novelty_threshold": ("novelty", "threshold"), "novelty_shingle": ("novelty", "shingle"),
    "n_seeds": ("options", "n_seeds"), "mutation": ("options", "mutation"),
    # CLI flags for nested fields (``archlore search --rungs 1,3,9 --reduction 3``)
    "rungs": ("fidelity", "rungs"), "reduction": ("fidelity", "reduction"),
}


def parse_rungs(text: str) -> list[float]:
    """``"1,3,9"`` -> ``[1.0, 3.0, 9.0]`` (epochs per rung); a one-line ``ConfigError`` for
    anything that is not two or more increasing positive numbers."""
    try:
        rungs = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        rungs = None
    if not rungs or len(rungs) < 2 or any(not e > 0 or e != e or e == float("inf") for e in rungs) \
            or any(b <= a for a, b in zip(rungs, rungs[1:], strict=False)):
        raise ConfigError(f"--rungs: expected two or more increasing positive epochs separated "
                          f"by commas, such as 1,3,9; got {text!r}")
    return rungs


class SearchConfig(BaseModel):
    """One run. Top level: what to search and for how long; nested: ``recipe`` (how each
    candidate is trained), ``evaluation`` (where), ``llm`` (who proposes), ``novelty``, and
    ``options`` (the strategy's own settings, validated by the strategy's ``Options`` model)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str | None = None  # run name (directory under runs_dir()); default: a timestamp
    seed: int = 0
    budget: int = Field(150, ge=1)  # candidates to evaluate (near-duplicates not counted)
    dataset: str = "digits"
    data_root: str | None = None  # directory with cifar10 / cifar100 / imagenet16 files
    download: bool = False  # fetch cifar10 / cifar100 / mnist / fashion-mnist if missing
    space: str = "open"
    strategy: str = "fairnad"
    objectives: list[str] = Field(default_factory=lambda: ["val_acc", "macs"], min_length=2,
                                  max_length=3)
    table: str | None = None  # NAS-Bench-201 CSV for --space nb201; None = $ARCHLORE_NB201_TABLE
    knowledge: str | None = None  # path of a knowledge store; None = the built-in corpus
    max_mflops: float | None = Field(None, gt=0)  # cap, millions of MACs per image
    max_params: int | None = Field(None, gt=0)
    repair_turns: int = Field(2, ge=0)  # repair rounds for a child rejected before training
    hv_ref_acc: float = Field(0.0, ge=0, lt=1)  # hypervolume reference: accuracy (fraction)
    hv_ref_mflops: float | None = Field(None, gt=0)  # MMACs; None = max_mflops or 2x largest seed
    hv_ref: dict[str, float] = Field(default_factory=dict)  # other objectives, in their units
    max_proposals_factor: float = Field(4.0, ge=1)  # stop after budget x this many proposals
    recipe: Recipe = Field(default_factory=Recipe)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    novelty: NoveltySettings = Field(default_factory=NoveltySettings)
    fidelity: FidelitySettings = Field(default_factory=FidelitySettings)
    proxy_check: ProxyCheckSettings = Field(default_factory=ProxyCheckSettings)
    options: dict[str, Any] = Field(default_factory=dict)  # strategy-specific settings

    @model_validator(mode="before")
    @classmethod
    def _nest_legacy_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("llm"), str):  # first format: llm = "offline"
            data["llm"] = {"backend": data["llm"]}
        opts = data.get("options")
        if isinstance(opts, dict) and isinstance(opts.get("llm"), dict):  # first format
            opts = dict(opts)
            llm = dict(data.get("llm") or {})
            for k, v in opts.pop("llm").items():
                (llm if k in LLMSettings.model_fields else llm.setdefault("extra", {}))[k] = v
            data["llm"], data["options"] = llm, opts
        for key, (group, field) in _LEGACY.items():
            if key in data:
                value = data.pop(key)
                target = dict(data.get(group) or {})
                target.setdefault(field, value)
                data[group] = target
        return data

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or "\\" in v or v.startswith(".")):
            raise ValueError(f"run name {v!r} must be a plain directory name")
        return v

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, v: list[str]) -> list[str]:
        from archlore.search.objectives import get_objective

        for name in v:
            get_objective(name)  # raises with the known names
        if len(set(v)) != len(v):
            raise ValueError(f"objectives repeat a name: {v}")
        return v

    def with_name(self) -> SearchConfig:
        if self.name:
            return self
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        # a user dataset's name holds a path and options: keep only safe characters
        dataset = re.sub(r"[^A-Za-z0-9._-]+", "-", self.dataset).strip("-.")[:40] or "data"
        return self.model_copy(update={"name": f"{self.strategy}-{dataset}-{stamp}"})

    def eval_config(self) -> EvalConfig:
        """What every candidate of this run is scored with (one recipe, the run's seed)."""
        return EvalConfig(**self.recipe.model_dump(), seed=self.seed, dataset=self.dataset,
                          data_root=self.data_root, max_mmacs=self.max_mflops,
                          max_params=self.max_params, timeout_s=self.evaluation.timeout_s,
                          measure_latency=any(o.startswith("latency") for o in self.objectives))


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


def load_file(path: str | Path) -> dict[str, Any]:
    """Raw settings from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file.

    A ``[search]`` table / ``search:`` key is used when present, else the top level.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {p}: use .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {p} cannot be parsed: {exc}") from exc
    data = data.get("search", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a table of settings")
    return data


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` (``--set``) -> (key, value); the value is read as JSON when it parses
    (numbers, true/false, lists, objects), else kept as a string. Dots address nested fields:
    ``mutation.crossover=0.3``."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _set_nested(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if parts[0] in _LEGACY and len(parts) == 1:  # --set epochs=3: the first format's key
        parts = list(_LEGACY[parts[0]])
    if parts[0] == "llm" and isinstance(data.get("llm"), str):
        data["llm"] = {"backend": data["llm"]}
    cur = data
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a table")
    cur[parts[-1]] = value


def build_config(file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 assignments: list[str] | None = None,
                 base: dict[str, Any] | None = None) -> SearchConfig:
    """Defaults < ``base`` (a saved config on resume) < file < ``overrides`` (CLI options
    that were given; None values are ignored) < ``assignments`` (``--set KEY=VALUE``)."""
    data: dict[str, Any] = dict(base or {})
    if file is not None:
        data.update(load_file(file))
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k == "llm" and isinstance(v, str):
            _set_nested(data, "llm.backend", v)
        elif k in _LEGACY:  # a flat CLI option for a nested field: set just that field
            _set_nested(data, ".".join(_LEGACY[k]), v)
        else:
            data[k] = v
    for a in assignments or []:
        _set_nested(data, *parse_assignment(a))
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid search config: " + "; ".join(parts)) from exc
