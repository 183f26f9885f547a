"""``--strategy swnas``: run one SWNAS supernet search, then propose its derived cells.

Two spaces: ``nb201`` (the NAS-Bench-201 cell, scored by the table) and ``open`` (block types
per stage of a base ArchSpec, by default the open space's residual seed; the derived nets are
rendered and scored by the evaluator; :mod:`.open_search`).

The first ``ask`` runs the search (or loads it from ``cache_dir``); proposals are the chosen
discretisation's ranking (``result.cells[method]``: the derived cell first, then the next-best
cells by the same score), one per ask, until it is exhausted. The engine scores them (the
NB201 table's validation accuracy); the strategy never reads a table.

Deterministic per ``ctx.seed``: the search is seeded, and a re-created strategy either
re-runs the same search or reads the cached result (keyed by the hash of its settings), so
proposal ``i`` is the same after a resume. ``replay`` (called by the engine on resume) only
advances the counter, without searching.

Options (``ctx.options``, validated by :class:`SWNASOptions`; unknown keys are an error):
every :class:`SearchSettings` field except ``seed``/``advisor`` (``epochs``, ``cells``,
``channels``, ``n_train``, ``n_val``, ``n_signal``, ``image_size``, ``a_lr``, ``lam``, ``tau``,
``advise_every``, ``dataset``, ``data_root`` ...), plus ``method`` (``synergistic`` |
``argmax`` | ``pt``), ``advisor`` (``rules`` | ``none`` | ``mutator``: the context's mutator
must then have ``advise_swnas(StructuralSignals) -> list[SpaceEdit]``), ``max_proposals`` and
``cache_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from archlore.search.protocol import Operator
from archlore.search.records import Candidate, Proposal
from archlore.search.registry import register_strategy
from archlore.search.strategies.base import Strategy, StrategyContext
from archlore.search.swnas.advisor import advise
from archlore.search.swnas.messages import SearchResult, SearchSettings
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16-120"}
# "swnas" once search.protocol.Operator has it; until then "init" (the notes say swnas)
OPERATOR = "swnas" if "swnas" in get_args(Operator) else "init"
_SETTING_FIELDS = {k: (f.annotation, f) for k, f in SearchSettings.model_fields.items()
                   if k not in ("seed", "advisor", "space")}  # space: the run's

SWNASOptions = create_model(  # SearchSettings' fields (same defaults) + the strategy's own
    "SWNASOptions",
    __config__=ConfigDict(extra="forbid"),
    method=(Literal["synergistic", "progressive", "argmax", "pt"], "synergistic"),
    advisor=(Literal["rules", "none", "mutator"], "rules"),
    max_proposals=(int, Field(20, ge=1)),
    cache_dir=(str | None, None),
    **{k: (ann, FieldInfo.merge_field_infos(f)) for k, (ann, f) in _SETTING_FIELDS.items()},
)


def _mutator_advisor(mutator: Any, seed: int) -> Any:
    """The LLM step as a typed request through the mutator protocol: operator ``swnas`` with
    the signals, answered with ``MutationResult.space_edits`` (none when it failed)."""
    from archlore.search.protocol import MutationRequest

    def advisor(signals: Any) -> list:
        res = mutator.mutate(MutationRequest(operator="swnas", space=signals.space,
                                             signals=signals,
                                             seed=seed * 1_000_003 + signals.epoch))
        return list(res.space_edits) if res.status == "ok" else []

    return advisor


def settings_from_options(ctx: StrategyContext, opts: BaseModel) -> tuple[SearchSettings, Any]:
    """(SearchSettings, advisor callable or None) from the context and validated options."""
    fields = {k: getattr(opts, k) for k in _SETTING_FIELDS if k in opts.model_fields_set}
    if getattr(ctx.space, "name", "nb201") == "open":
        fields["space"] = "open"
        fields.setdefault("dataset", ctx.constraints.dataset)
        fields.setdefault("image_size", ctx.constraints.image_size)
        if fields.get("base") is None:  # the open space's residual seed, sized for the run
            fields["base"] = ctx.space.seeds(ctx.constraints)[1].to_json()
    if "dataset" not in fields:
        fields["dataset"] = _DATASETS.get(str(ctx.constraints.dataset).lower(), "cifar10")
    if fields.get("data_root") is None:
        fields["data_root"] = getattr(ctx, "data_root", None) or os.environ.get("ARCHLORE_DATA")
    advisor: Any
    if opts.advisor == "rules":
        advisor, label = advise, "rules"
    elif opts.advisor == "mutator":
        if ctx.mutator is None:
            raise ValueError("swnas advisor='mutator' needs a mutator")
        advisor = _mutator_advisor(ctx.mutator, ctx.seed)
        label = f"mutator:{type(ctx.mutator).__name__}:{getattr(ctx.mutator, 'model', '')}"
    else:
        advisor, label = None, "none"
    if advisor is not None and "advise_every" not in fields:
        fields["advise_every"] = 2
    return SearchSettings(seed=ctx.seed, advisor=label, **fields), advisor


@register_strategy("swnas")
class SWNASStrategy(Strategy):
    name = "swnas"
    Options = SWNASOptions

    def __init__(self, ctx: StrategyContext) -> None:
        super().__init__(ctx)
        self.open = getattr(ctx.space, "name", "nb201") == "open"
        if not self.open and getattr(ctx.space, "name", "nb201") != "nb201":
            raise ValueError("the swnas strategy searches the nb201 or the open space")
        opts = SWNASOptions.model_validate(ctx.options)
        if self.open and opts.method == "progressive":
            raise ValueError("swnas method 'progressive' exists for the nb201 cell only "
                             "(open space: synergistic, argmax or pt)")
        self.method: str = opts.method
        self.settings, self.advisor = settings_from_options(ctx, opts)
        self.max_proposals = opts.max_proposals
        cache = opts.cache_dir
        self.cache_path = (Path(cache).expanduser() / f"swnas-{self.settings.key()}.json"
                           if cache else None)
        self.result: SearchResult | None = None
        self.cache_hit = False
        self.best: tuple[float, str] | None = None
        self._ranked: list[str] | None = None

    # search -----------------------------------------------------------------------------
    def search(self) -> SearchResult:
        """The search result (run once; cached on disk when ``cache_dir`` is set)."""
        if self.result is not None:
            return self.result
        if self.cache_path is not None and self.cache_path.is_file():
            self.result = SearchResult.model_validate_json(self.cache_path.read_text())
            self.cache_hit = True
            return self.result
        from archlore.search.swnas.darts import run_search  # torch only when searching

        self.result = run_search(self.settings, advisor=self.advisor)
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".tmp")
            tmp.write_text(self.result.model_dump_json())
            tmp.replace(self.cache_path)
        return self.result

    def ranking(self) -> list[str]:
        if self._ranked is None:
            self._ranked = self._rank()
        return self._ranked

    def _rank(self) -> list[str]:
        ranked = self.search().cells[self.method]
        if self.open:  # derived nets over the run's caps are not proposed
            from archlore.search.spaces.open import fits

            kept = []
            for arch in ranked:
                if fits(self.space.decode(arch), self.ctx.constraints):
                    kept.append(arch)
                    if len(kept) == self.max_proposals:
                        break
            if not kept:
                raise ValueError(f"none of the {len(ranked)} nets the open-space SWNAS search "
                                 "derived fits the run's caps (--max-mflops / --max-params); "
                                 "raise them or search a smaller base (options.base)")
            ranked = kept
        return ranked[:self.max_proposals]

    # ask / tell -------------------------------------------------------------------------
    def ask(self, n: int) -> list[Proposal]:
        ranked = self.ranking()
        out = []
        while len(out) < n and self.asked < len(ranked):
            arch = ranked[self.asked]
            notes = f"swnas {self.method} rank {self.asked}"
            if self.open:
                out.append(self.proposal(self.space.decode(arch), operator=OPERATOR,
                                         notes=notes))
            else:
                out.append(Proposal(arch=arch, operator=OPERATOR, notes=notes))
            self.asked += 1
        return out

    def replay(self, stored: Candidate) -> None:
        """Resume: a stored candidate stands for the next proposal (no search needed)."""
        self.asked += 1

    def tell(self, candidate: Candidate) -> None:
        if candidate.status != "evaluated" or not candidate.valid or candidate.arch is None:
            return
        assert candidate.evaluation is not None and candidate.evaluation.val_acc is not None
        if self.best is None or candidate.evaluation.val_acc > self.best[0]:
            self.best = (candidate.evaluation.val_acc, candidate.arch)

    def stats(self) -> dict[str, Any]:
        r = self.result
        return {
            "method": self.method, "advisor": self.settings.advisor,
            "searched": r is not None, "cache_hit": self.cache_hit,
            "search_wall_s": None if r is None else round(r.wall_s, 1),
            "supernet_val_acc": None if r is None else r.supernet_val_acc,
            "edits": 0 if r is None else sum(len(e["accepted"]) for e in r.edits),
            "derived": None if r is None or not self._ranked else self._ranked[0],
            "best_val_acc": None if self.best is None else self.best[0],
        }
