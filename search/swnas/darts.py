"""First-order DARTS over the NB201 supernet, with the signals SWNAS reads.

Per step (DARTS-V1, first order): an ``alpha`` Adam step on a validation batch with the
weights fixed, then a weight SGD step on a training batch with ``alpha`` fixed. After each
epoch the search records ``softmax(alpha)`` and the node importances (:mod:`.importance`);
every ``advise_every`` epochs an advisor (rule-based or an LLM) reads a
:class:`~.messages.StructuralSignals` and may mask ops (the space shrinks for the rest of the
search) or prefer ops (a bonus at discretisation). At the end the op importances are measured
and every discretisation is derived from the same supernet.

Deterministic per ``seed`` on one machine and thread count: data order, init and subsets are
all drawn from it (the data subset itself is fixed by ``data_seed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from archlore.search.swnas import discretize, importance
from archlore.search.swnas.messages import (
    SearchResult,
    SearchSettings,
    SpaceEdit,
    StructuralSignals,
    apply_edits,
    validate_edits,
)
from archlore.search.swnas.supernet import Supernet

Advisor = Callable[[StructuralSignals], list[SpaceEdit]]


@dataclass
class SearchData:
    """Normalised float32 images (N, C, H, W) and int64 labels for the two DARTS splits (the
    signals are measured on the first ``n_signal`` validation images)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    num_classes: int = 10

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])


def load_search_data(settings: SearchSettings) -> SearchData:
    """A fixed subset of the dataset's *training* images, split in two halves as DARTS does
    (weights on one, alpha on the other). Test images are never read."""
    from archlore.evaluator.data import load_dataset

    splits = load_dataset(settings.dataset, settings.data_root)
    n = settings.n_train + settings.n_val
    if n > len(splits.train_x):
        raise ValueError(f"need {n} training images, {settings.dataset} has {len(splits.train_x)}")
    idx = np.random.default_rng(settings.data_seed).permutation(len(splits.train_x))[:n]
    tr, va = idx[:settings.n_train], idx[settings.n_train:]
    tx, vx = (downsample(splits.train_x[i], settings.image_size) for i in (tr, va))
    return SearchData(tx, splits.train_y[tr], vx, splits.train_y[va], splits.num_classes)


def downsample(x: np.ndarray, size: int) -> np.ndarray:
    """Average-pool (N, C, H, W) images by an integer factor down to ``size`` pixels."""
    h = x.shape[2]
    if size >= h:
        return x
    if h % size:
        raise ValueError(f"image_size {size} must divide the native size {h}")
    f = h // size
    n, c = x.shape[:2]
    return x.reshape(n, c, size, f, size, f).mean(axis=(3, 5)).astype(np.float32)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip + pad-and-crop (H/8 pixels, one offset per batch: cheap on CPU)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    p = max(1, x.shape[2] // 8)
    dx, dy = (int(v) for v in torch.randint(0, 2 * p + 1, (2,), generator=gen))
    pad = F.pad(x, (p, p, p, p))
    return pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


class DartsSearch:
    """One supernet search. ``run()`` returns a :class:`SearchResult` (JSON-serialisable)."""

    def __init__(self, settings: SearchSettings, data: SearchData,
                 advisor: Advisor | None = None) -> None:
        self.s = settings
        self.data = data
        self.advisor = advisor
        self.gen = torch.Generator().manual_seed(settings.seed)
        with torch.random.fork_rng(devices=[]):  # seeded init; the caller's RNG is untouched
            torch.manual_seed(settings.seed)
            self.net = self.build_net()
        self.mask = torch.ones(tuple(self.net.alpha.shape), dtype=torch.bool)
        self.prefer = np.ones(tuple(self.net.alpha.shape))
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=settings.w_lr,
                                     momentum=0.9, weight_decay=settings.w_wd, nesterov=True)
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=settings.a_lr,
                                      betas=(0.5, 0.999), weight_decay=settings.a_wd)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_opt, T_max=max(1, settings.epochs), eta_min=settings.w_lr_min)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        self.tx, self.ty = t(data.train_x), t(data.train_y)
        self.vx, self.vy = t(data.val_x), t(data.val_y)
        k = min(settings.n_signal, len(self.vx))
        self.sx, self.sy = self.vx[:k], self.vy[:k]

    def build_net(self) -> torch.nn.Module:
        return Supernet(self.s.channels, self.s.cells, self.data.num_classes,
                        self.data.in_channels)

    def weights(self) -> torch.Tensor:
        return self.net.mixing_weights(self.mask)

    def train_epoch(self) -> float:
        self.net.train()
        bs = self.s.batch_size
        tp = torch.randperm(len(self.tx), generator=self.gen)
        vp = torch.randperm(len(self.vx), generator=self.gen)
        steps = min(len(tp), len(vp)) // bs
        total = 0.0
        for b in range(steps):
            vi, ti = vp[b * bs:(b + 1) * bs], tp[b * bs:(b + 1) * bs]
            # alpha step on validation data (first order: current weights)
            self.a_opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.net(self.vx[vi], self.weights()), self.vy[vi]).backward()
            self.a_opt.step()
            # weight step on training data, alpha fixed
            self.w_opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.net(_augment(self.tx[ti], self.gen),
                                            self.weights().detach()), self.ty[ti])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.weight_parameters(), 5.0)
            self.w_opt.step()
            total += float(loss.detach())
        self.sched.step()
        return total / max(1, steps)

    def run(self) -> SearchResult:
        start = time.perf_counter()
        alphas: list[list[list[float]]] = []
        nodes: list[list[float]] = []
        edits_log: list[dict] = []
        losses: list[float] = []
        threads = torch.get_num_threads()
        if self.s.threads:
            torch.set_num_threads(self.s.threads)
        try:
            for epoch in range(1, self.s.epochs + 1):
                losses.append(self.train_epoch())
                with torch.no_grad():
                    w = self.weights()
                    alphas.append(w.tolist())
                    nodes.append(self.node_importance(w))
                due = self.s.advise_every > 0 and epoch % self.s.advise_every == 0
                if self.advisor is not None and due and epoch < self.s.epochs:
                    signals = self.signals(epoch, alphas, nodes)
                    proposed = self.advisor(signals)
                    accepted, rejected = validate_edits(proposed, signals)
                    self.apply(accepted, alphas, nodes)
                    edits_log.append({"epoch": epoch,
                                      "accepted": [e.model_dump() for e in accepted],
                                      "rejected": [{"edit": e.model_dump(), "reason": r}
                                                   for e, r in rejected]})
            with torch.no_grad():
                w = self.weights()
                final = self.signals(self.s.epochs, alphas, nodes)
                acc = importance.accuracy(self.net, w, self.sx, self.sy)
            cells, trace = self.derive(final)
        finally:
            torch.set_num_threads(threads)
        return SearchResult(settings=self.s, alpha_history=alphas, node_history=nodes,
                            final=final, edits=edits_log, train_loss=losses, cells=cells,
                            supernet_val_acc=acc, wall_s=time.perf_counter() - start,
                            progressive_trace=trace)

    # the space-specific steps (the open space overrides them: .open_search) ----------------
    def node_importance(self, w: torch.Tensor) -> list[float]:
        return importance.node_importance(self.net, w, self.sx, self.sy)

    def apply(self, accepted: list, alphas: list, nodes: list) -> None:
        """Apply an advisor step's accepted edits (``alphas``/``nodes``: the history so far)."""
        self.mask, self.prefer = apply_edits(accepted, self.mask, self.prefer)

    def derive(self, final: StructuralSignals) -> tuple[dict[str, list[str]], list[dict]]:
        """Every discretisation's ranking (and the progressive trace) from the final signals."""
        cells = discretize.derive_all(final, self.s.lam, self.s.tau, self.prefer.tolist())
        trace: list[dict] = []
        if self.s.progressive:
            first, trace = self.progressive()
            rest = [c for c in cells["synergistic"] if c != first]
            cells["progressive"] = [first] + rest[:len(cells["synergistic"]) - 1]
        return cells, trace

    @torch.no_grad()
    def progressive(self) -> tuple[str, list[dict]]:
        """Progressive synergistic discretisation on the trained supernet (no fine-tuning):
        :func:`discretize.progressive` with the supernet's loss on the signal slice."""
        def loss_fn(w: np.ndarray) -> float:
            return importance.loss(self.net, torch.as_tensor(w, dtype=torch.float32),
                                   self.sx, self.sy)

        return discretize.progressive(self.weights().numpy(), loss_fn,
                                      allowed=self.mask.numpy(), prefer=self.prefer)

    @torch.no_grad()
    def signals(self, epoch: int, alphas: list, nodes: list) -> StructuralSignals:
        w = self.weights()
        op_imp = importance.op_importance(self.net, w, self.sx, self.sy)
        k = self.s.trend_window
        return StructuralSignals.from_history(epoch, alphas, nodes, op_imp,
                                              self.mask.tolist(), k)


def run_search(settings: SearchSettings, data: SearchData | None = None,
               advisor: Advisor | None = None) -> SearchResult:
    """Load the data (unless given) and run one search (NB201 cell or open space)."""
    data = data or load_search_data(settings)
    if settings.space == "open":
        from archlore.search.swnas.open_search import OpenDartsSearch

        return OpenDartsSearch(settings, data, advisor).run()
    return DartsSearch(settings, data, advisor).run()
