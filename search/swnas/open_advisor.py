"""The rule-based advisor in the open space (stages x block types), and its observations.

Three rules, reading only the signals (:mod:`.open_messages`):

1. **Mask over-credited, useless blocks.** On a stage, a block whose alpha share exceeds its
   measured share by more than ``gap`` while removing it does not raise the validation loss
   (``D <= 0``) is masked -- alpha keeps a block the measurements say the net does not use
   (the open-space form of the NB201 skip collapse). At least two blocks stay per stage.
2. **Prefer measured blocks on important stages** (importance >= ``important``, non-falling
   trend): the block with the largest positive ``D`` when alpha under-credits it.
3. **Add a node where capacity matters.** While nodes may be added (``add_left``): after the
   most important stage whose importance is >= ``important`` and rising or flat, insert a
   node tilted towards the block measured best there. The node keeps its place only if it
   earns it: discretisation drops an added node whose importance ends below ``tau``.
"""

from __future__ import annotations

import numpy as np
from archlore.search.swnas.messages import AddNode, StructuralSignals
from archlore.search.swnas.open_messages import MaskBlock, PreferBlock


def _shares(signals: StructuralSignals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from archlore.search.swnas.advisor import _shares as shares

    p, r = shares(signals)
    return p, r, np.asarray(signals.op_importance, dtype=float)


def advise_open(signals: StructuralSignals, important: float = 0.5, gap: float = 0.1,
                prefer_strength: float = 1.5) -> list:
    """Edits for open-space ``signals`` (possibly none). Pure function of its input."""
    p, r, d = _shares(signals)
    masked = np.asarray(signals.masked, dtype=bool)
    imp = np.asarray(signals.node_importance, dtype=float)
    trend = np.asarray(signals.node_trend, dtype=float)
    ops = signals.ops
    edits: list = []
    for s in range(len(signals.edges)):
        left = int((~masked[s]).sum())
        for b in np.argsort(r[s] - p[s], kind="stable"):  # most over-credited first
            if left <= 2 or masked[s, b] or p[s, b] - r[s, b] <= gap or d[s, b] > 0:
                continue
            edits.append(MaskBlock(stage=s + 1, block=ops[b],
                                   reason=f"alpha share {p[s, b]:.2f} vs measured share "
                                          f"{r[s, b]:.2f}; removing it costs nothing "
                                          f"({d[s, b]:+.4f})"))
            left -= 1
        if imp[s] >= important and trend[s] >= 0:
            row = np.where(masked[s], -np.inf, d[s])
            best = int(np.argmax(row))
            if row[best] > 0 and r[s, best] > p[s, best]:
                edits.append(PreferBlock(stage=s + 1, block=ops[best], strength=prefer_strength,
                                         reason=f"stage {s + 1} importance {imp[s]:.2f}; "
                                                f"{ops[best]} measures best ({row[best]:+.4f})"))
    if signals.add_left > 0:
        ok = [s for s in range(len(imp)) if imp[s] >= important and trend[s] >= 0]
        if ok and len(signals.edges) < 6:
            s = max(ok, key=lambda i: (imp[i], -i))
            row = np.where(masked[s], -np.inf, d[s])
            block = ops[int(np.argmax(row))]
            edits.append(AddNode(after=s + 1, op=block,
                                 reason=f"stage {s + 1} is the most important "
                                        f"({imp[s]:.2f}, trend {trend[s]:+.3f}); more capacity "
                                        f"there, as {block}, its best-measured block"))
    return edits


def open_observations(signals: StructuralSignals, gap: float = 0.1) -> list[str]:
    """Plain-sentence facts for an LLM advisor in the open space."""
    from archlore.search.swnas.advisor import credit_gaps

    p, r, d = _shares(signals)
    imp = np.asarray(signals.node_importance, dtype=float)
    lines = ["Stage importance: " + ", ".join(
        f"stage {s + 1} {imp[s]:.2f}" + (" (added)" if signals.added and signals.added[s]
                                         else "") for s in range(len(imp))) + "."]
    over, under = credit_gaps(signals, p, r, gap, lambda s, b: f"stage {s + 1} {signals.ops[b]}",
                              extra=lambda s, b: f", removal {d[s, b]:+.4f}")
    lines.append("Weight share above measured share (over-credited: candidates for "
                 "mask_block): " + ("; ".join(over) if over else "none") + ".")
    lines.append("Weight share below measured share (under-credited: candidates for "
                 "prefer_block): " + ("; ".join(under) if under else "none") + ".")
    if signals.add_left > 0 and len(signals.edges) < 6:
        top = int(np.argmax(imp))
        lines.append(f"You may add {signals.add_left} node(s) (add_node, after = a stage "
                     f"number, 0 = after the stem); the most important stage is {top + 1}.")
    else:
        lines.append("No node can be added now.")
    return lines
