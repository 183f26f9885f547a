"""One validated configuration for a search run: embedded defaults < config file < CLI.

``SearchConfig`` is what ``archlore search`` runs on; the effective config (after the file
and the CLI overrides) is saved in the run store, and ``--resume`` reads it back from there.
The defaults are the main job: digits, the offline mutator, the built-in corpus, 2 workers,
sized to finish in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class MutationMix(BaseModel):
    """Relative weights of FairNAD's mutation types (normalised at use)."""

    model_config = ConfigDict(extra="forbid")

    idea: float = Field(0.4, ge=0)  # fair-idea mutation of a front parent
    pareto: float = Field(0.3, ge=0)  # goal depends on where the parent sits on the front
    refine: float = Field(0.15, ge=0)  # continue the most promising lineage
    crossover: float = Field(0.15, ge=0)


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str | None = None  # run name (directory under runs_dir()); default: a timestamp
    seed: int = 0
    budget: int = Field(150, ge=1)  # candidates to evaluate (near-duplicates not counted)
    dataset: str = "digits"
    data_root: str | None = None  # directory with cifar10 / cifar100 / imagenet16 files
    space: str = "open"
    strategy: str = "fairnad"
    llm: str = "offline"  # offline | openai | replay ...
    model: str | None = None  # LLM model name
    table: str | None = None  # NAS-Bench-201 CSV for --space nb201; None = $ARCHLORE_NB201_TABLE
    knowledge: str | None = None  # path of a knowledge store; None = the built-in corpus
    workers: int = Field(2, ge=1)
    devices: list[str] = Field(default_factory=lambda: ["cpu"])
    epochs: float = Field(4.0, gt=0)
    max_steps: int | None = None
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.05, gt=0)
    eval_timeout_s: float = Field(120.0, gt=0)
    max_mflops: float | None = Field(None, gt=0)  # cap, millions of MACs per image
    max_params: int | None = Field(None, gt=0)
    n_seeds: int = Field(6, ge=1)  # initial candidates before mutation starts
    mutation: MutationMix = Field(default_factory=MutationMix)
    repair_turns: int = Field(2, ge=0)  # repair rounds for a child rejected before training
    novelty_threshold: float = Field(0.9, gt=0, le=1)
    novelty_shingle: int = Field(5, ge=1)
    hv_ref_acc: float = Field(0.0, ge=0, lt=1)  # hypervolume reference: accuracy (fraction)
    hv_ref_mflops: float | None = Field(None, gt=0)  # MMACs; None = max_mflops or 2x largest seed
    max_proposals_factor: float = Field(4.0, ge=1)  # stop after budget x this many proposals
    options: dict[str, Any] = Field(default_factory=dict)  # strategy-specific settings

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or "\\" in v or v.startswith(".")):
            raise ValueError(f"run name {v!r} must be a plain directory name")
        return v

    def with_name(self) -> SearchConfig:
        if self.name:
            return self
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return self.model_copy(update={"name": f"{self.strategy}-{self.dataset}-{stamp}"})


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
        if v is not None:
            data[k] = v
    for a in assignments or []:
        _set_nested(data, *parse_assignment(a))
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid search config:\n" + "\n".join(lines)) from exc
