"""SWNAS in the open space: first-order DARTS over block types per stage of an ArchSpec, with
node (stage) importances, synergistic discretisation and an advisor that may add a node.

The loop, data handling and advisor schedule are :class:`~.darts.DartsSearch`'s; this class
replaces the space-specific steps (supernet, signals, edits, discretisation):

* signals per stage ``s`` and block ``b``: ``softmax(alpha)``, the op importance ``D(s, b)``
  (validation-loss rise when ``b`` is removed from ``s``) and the node importance
  ``I_s = clip(D_s / max_s' D_s', 0, 1)`` with ``D_s`` the loss rise when stage ``s``'s
  residual branches are zeroed (:mod:`.open_supernet`);
* discretisations: ``argmax`` (DARTS-V1: per stage argmax of alpha), ``pt`` (per stage argmax
  of ``D``), ``synergistic``::

      S(s, b)    = I_s * pi(s, b) * p(s, b)^(1-lam) * r(s, b)^lam   (I_s := 1 if not droppable)
      S(s, drop) = tau * max_b p^(1-lam) r^lam                     (droppable stages only)

  with ``p``/``r`` the alpha and measured shares over the stage's unmasked blocks (as in the
  NB201 cell, docs/swnas.md). A droppable stage (identity shortcut, stride 1, same width:
  every added node) is removed when its importance falls below ``tau``; no other stage is.
* AddNode edits insert a stage (the new weights join the weight optimiser at the current
  learning rate; the alpha optimiser restarts, since alpha gains a row).

Rankings: whole nets by the sum of per-stage log scores over the best 4 options per stage;
``cells[method]`` holds ArchSpec JSON (the derived net first). No progressive derivation here.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from archlore.search.spaces.open_spec import ArchSpec
from archlore.search.swnas import importance
from archlore.search.swnas.darts import DartsSearch
from archlore.search.swnas.messages import AddNode, StructuralSignals
from archlore.search.swnas.open_messages import OPEN_BLOCKS, apply_open_edits, stage_label
from archlore.search.swnas.open_supernet import OpenSupernet

EPS = 1e-6
TOP_OPTIONS = 4  # per stage, when ranking whole nets
RANKED = 100  # nets kept per method (the strategy drops those over the run's caps)


class OpenDartsSearch(DartsSearch):
    net: OpenSupernet

    def build_net(self) -> OpenSupernet:
        if not self.s.base:
            raise ValueError("an open-space SWNAS search needs a base ArchSpec (settings.base)")
        return OpenSupernet(ArchSpec.from_json(self.s.base), self.data.num_classes,
                            self.data.in_channels)

    # signals -------------------------------------------------------------------------------
    @torch.no_grad()
    def node_importance(self, w: torch.Tensor) -> list[float]:
        k = len(self.net.stages)
        base = importance.loss(self.net, w, self.sx, self.sy)
        drops = []
        for s in range(k):
            scale = torch.ones(k)
            scale[s] = 0.0
            drops.append(importance.loss(self.net, w, self.sx, self.sy, scale) - base)
        denom = max(max(drops), 1e-8)
        return [min(1.0, max(0.0, d / denom)) for d in drops]

    @torch.no_grad()
    def op_importance(self, w: torch.Tensor) -> list[list[float]]:
        base = importance.loss(self.net, w, self.sx, self.sy)
        out = [[0.0] * len(OPEN_BLOCKS) for _ in self.net.stages]
        for s in range(len(self.net.stages)):
            for b in range(len(OPEN_BLOCKS)):
                if float(w[s, b]) == 0.0 or int((w[s] != 0).sum()) <= 1:
                    continue  # masked, or the stage's only block (removing it is not a net)
                w2 = w.clone()
                w2[s, b] = 0.0
                out[s][b] = importance.loss(self.net, w2, self.sx, self.sy) - base
        return out

    @torch.no_grad()
    def signals(self, epoch: int, alphas: list, nodes: list) -> StructuralSignals:
        _backfill(nodes)
        w = self.weights()
        return StructuralSignals.from_history(
            epoch, alphas, nodes, self.op_importance(w), self.mask.tolist(),
            self.s.trend_window, space="open",
            edges=[stage_label(i) for i in range(len(self.net.stages))], ops=list(OPEN_BLOCKS),
            added=list(self.net.added), add_left=self.s.max_added - sum(self.net.added))

    # edits ---------------------------------------------------------------------------------
    def apply(self, accepted: list, alphas: list, nodes: list) -> None:
        self.mask, self.prefer = apply_open_edits(accepted, self.mask, self.prefer)
        # insert from the deepest position first: stage numbers refer to the nets before
        adds = [e for e in accepted if isinstance(e, AddNode)]
        for n, edit in sorted(enumerate(adds), key=lambda ie: -ie[1].after):
            self.add_node(edit.after, edit.op, alphas, nodes, salt=n)

    def add_node(self, after: int, block: str, alphas: list, nodes: list, salt: int = 0) -> None:
        with torch.random.fork_rng(devices=[]):  # seeded init of the new node's weights
            torch.manual_seed(self.s.seed * 1_000_003 + len(alphas) * 101 + after * 7 + salt)
            params = self.net.add_node(after, block)
        lr = self.w_opt.param_groups[0]["lr"]
        self.w_opt.add_param_group({"params": params, "lr": lr, "initial_lr": self.s.w_lr})
        self.sched.base_lrs.append(self.s.w_lr)
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=self.s.a_lr,
                                      betas=(0.5, 0.999), weight_decay=self.s.a_wd)
        self.mask = torch.cat([self.mask[:after], torch.ones(1, self.mask.shape[1],
                                                             dtype=torch.bool),
                               self.mask[after:]])
        self.prefer = np.insert(self.prefer, after, 1.0, axis=0)
        row = torch.softmax(self.net.alpha[after].detach(), -1).tolist()
        for entry in alphas:  # history in the current layout: the node "was" at its start
            entry.insert(after, row)
        for entry in nodes:  # unknown until measured: filled with the first measurement
            entry.insert(after, float("nan"))

    # discretisation ------------------------------------------------------------------------
    def derive(self, final: StructuralSignals) -> tuple[dict[str, list[str]], list[dict]]:
        tables = scores(final, self.s.lam, self.s.tau, self.prefer,
                        [st.droppable for st in self.net.stages])
        cells = {}
        for method, table in tables.items():
            cells[method] = [self.net.derive(choice, name=f"swnas-open-{method}").to_json()
                             for choice in rank(table, limit=RANKED)]
        return cells, []


def _backfill(nodes: list[list[float]]) -> None:
    """An added node's importance before its first measurement := that measurement (so its
    trend starts at 0 instead of a jump from a made-up value). In place."""
    for col in range(len(nodes[-1]) if nodes else 0):
        first = next((row[col] for row in nodes if row[col] == row[col]), None)  # not NaN
        if first is not None:
            for row in nodes:
                if row[col] != row[col]:
                    row[col] = first


def scores(signals: StructuralSignals, lam: float, tau: float, prefer: np.ndarray,
           droppable: list[bool]) -> dict[str, np.ndarray]:
    """Per method a (stages x (blocks + 1)) log-score table; the last column is "drop"
    (``-inf`` where a stage cannot be dropped or the method never drops)."""
    allowed = ~np.asarray(signals.masked, dtype=bool)
    a = np.where(allowed, np.asarray(signals.alpha, dtype=float), 0.0)
    d_raw = np.asarray(signals.op_importance, dtype=float)
    d = np.where(allowed, np.maximum(d_raw, 0.0) + EPS, 0.0)
    asum, dsum = a.sum(1, keepdims=True), d.sum(1, keepdims=True)
    p = np.divide(a, asum, out=np.zeros_like(a), where=asum > 0)
    r = np.divide(d, dsum, out=np.zeros_like(d), where=dsum > 0)
    # the node factor weighs a stage against dropping it; a stage that cannot be dropped keeps
    # a factor of 1 (a constant per row changes neither its choice nor the nets' order)
    imp = np.where(droppable, np.clip(np.asarray(signals.node_importance, dtype=float), 0, 1),
                   1.0)
    neg = np.full((len(a), 1), -np.inf)
    with np.errstate(divide="ignore"):
        combined = p ** (1 - lam) * r ** lam
        syn = np.log(imp[:, None] * np.asarray(prefer) * combined)
        drop = np.where(np.asarray(droppable), np.log(tau * combined.max(1)), -np.inf)[:, None]
        argmax = np.where(allowed, np.log(a), -np.inf)
    pt = np.where(allowed, d_raw, -np.inf)
    return {"argmax": np.hstack([argmax, neg]), "pt": np.hstack([pt, neg]),
            "synergistic": np.hstack([np.where(allowed, syn, -np.inf), drop])}


def rank(table: np.ndarray, limit: int = 20) -> list[list[str | None]]:
    """Whole-net choices (a block name or None = drop, per stage) by descending total score,
    the best ``limit``; ties broken by block order."""
    names: list[str | None] = [*OPEN_BLOCKS, None]
    options = []
    for row in table:
        order = [i for i in np.argsort(-row, kind="stable") if np.isfinite(row[i])]
        options.append(order[:TOP_OPTIONS])
    combos = []
    for combo in itertools.product(*options):
        if all(names[i] is None for i in combo):
            continue  # a net needs a stage
        combos.append((-sum(table[s, i] for s, i in enumerate(combo)), combo))
    combos.sort()
    return [[names[i] for i in combo] for _, combo in combos[:limit]]
