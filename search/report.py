"""Outputs of a run, rebuilt from its store alone (``archlore report NAME``).

In the run directory:
- ``pareto.csv``: one row per Pareto-front member (val acc up, MACs per image down);
- ``pareto.png``: every valid candidate and the front, front members annotated with their id;
- ``hypervolume.png``: normalised hypervolume after each tell;
- ``models/cand_NNNN.py``: each front model as a standalone file headed by a comment block
  with its metrics and lineage (operators, ideas, papers);
- ``report.html``: one self-contained page (PNGs embedded as base64): summary, front table,
  hypervolume curve, per-idea statistics, lineage of the best models with their papers.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archlore.knowledge.schema import Idea
from archlore.search.engine import FrontTracker, front_of, hypervolume_curve
from archlore.search.feedback import IdeaStats
from archlore.search.records import Candidate
from archlore.search.store import RunStore

CSV_FIELDS = ["id", "val_acc", "test_acc", "mmacs", "macs", "params", "operator", "idea_id",
              "category", "parents", "model_file"]


@dataclass
class Outputs:
    csv: Path
    png: Path
    hv_png: Path
    html: Path
    models: list[Path]


def lineage(cid: int, by_id: dict[int, Candidate]) -> list[Candidate]:
    """The candidate and its first-parent ancestors, root first."""
    chain: list[Candidate] = []
    seen: set[int] = set()
    cur: int | None = cid
    while cur is not None and cur in by_id and cur not in seen:
        seen.add(cur)
        c = by_id[cur]
        chain.append(c)
        cur = c.parents[0] if c.parents else None
    return chain[::-1]


def _papers(idea: Idea | None) -> list[str]:
    if idea is None:
        return []
    return [f"{p.title or p.paper_id}" + (f" ({p.paper_id})" if p.title else "")
            for p in idea.provenance]


def _step_text(c: Candidate, ideas: dict[str, Idea]) -> str:
    idea = ideas.get(c.idea_id or "")
    ev = c.evaluation
    metrics = (f"val acc {100 * ev.val_acc:.2f} %, {ev.macs / 1e6:.4f} MMACs per image" if c.valid else
               (f"{ev.status} at {ev.stage}" if ev else c.status))
    what = f"#{c.id} {c.operator}"
    if c.parents:
        what += " of " + ", ".join(f"#{p}" for p in c.parents)
    if idea is not None:
        what += f" + idea '{idea.name}' [{idea.category.value}]"
    papers = _papers(idea)
    return f"{what}: {metrics}" + (f"; from: {'; '.join(papers)}" if papers else "")


def idea_table(cands: list[Candidate], ref_acc: float, ref_mmacs: float | None,
               ideas: dict[str, Idea]) -> list[dict[str, Any]]:
    """Per-idea statistics recomputed from the candidates in tell order."""
    stats = IdeaStats()
    tracker = FrontTracker(ref_acc, ref_mmacs)
    by_id = {c.id: c for c in cands}
    for c in cands:
        if c.status == "duplicate":
            continue
        ev = c.evaluation
        on_front = False
        if c.valid and ev.val_acc is not None and ev.macs is not None:
            on_front = tracker.add(c.id, ev.val_acc, ev.macs / 1e6)
        parent = by_id.get(c.parents[0]) if c.parents else None
        stats.record(c.idea_id, ev, parent.evaluation if parent else None, on_front)
    rows = []
    for iid, d in stats.as_dict().items():
        idea = ideas.get(iid)
        rows.append({"id": iid, "name": idea.name if idea else iid,
                     "category": idea.category.value if idea else "", **d})
    return sorted(rows, key=lambda r: (r["category"], r["id"]))


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plots(cands: list[Candidate], front: list[Candidate], hv: Any) -> tuple[bytes, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    valid = [c for c in cands if c.valid]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([c.evaluation.macs / 1e6 for c in valid], [100 * c.evaluation.val_acc for c in valid],
               s=14, c="#9aa5b1", label=f"candidates ({len(valid)} valid)")
    fr = sorted(front, key=lambda c: c.evaluation.macs)
    xs = [c.evaluation.macs / 1e6 for c in fr]
    ys = [100 * c.evaluation.val_acc for c in fr]
    ax.step(xs, ys, where="post", color="#d1495b", lw=1.5)
    ax.scatter(xs, ys, s=30, c="#d1495b", label=f"Pareto front ({len(fr)})", zorder=3)
    for i, (c, x, y) in enumerate(zip(fr, xs, ys, strict=True)):
        # alternate below-right / above-left so neighbouring front members' ids don't overlap
        below = i % 2 == 0
        ax.annotate(f"#{c.id}", (x, y), textcoords="offset points", fontsize=8,
                    xytext=(4, -11) if below else (-4, 5), ha="left" if below else "right")
    ax.set_xlabel("MMACs per image")
    ax.set_ylabel("validation accuracy (%)")
    if valid:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    pareto_png = _png(fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(range(1, len(hv) + 1), hv, color="#00798c")
    ax.set_xlabel("candidates told")
    ax.set_ylabel("normalised hypervolume")
    ax.grid(alpha=0.3)
    hv_png = _png(fig)
    plt.close(fig)
    return pareto_png, hv_png


def _model_file(c: Candidate, chain: list[Candidate], ideas: dict[str, Idea], run: str) -> str:
    ev = c.evaluation
    head = [f"archlore run {run}: candidate #{c.id} (on the Pareto front)",
            f"val acc {100 * ev.val_acc:.2f} %, test acc "
            + (f"{100 * ev.test_acc:.2f} %" if ev.test_acc is not None else "n/a")
            + f", {ev.macs / 1e6:.4f} MMACs per image, {ev.params} params",
            f"dataset {ev.dataset}, seed {ev.seed}", "lineage (root first):"]
    head += ["  " + _step_text(x, ideas) for x in chain]
    body = c.code or f"# table-space architecture: {c.arch}\n"
    return "".join(f"# {line}\n" for line in head) + "\n" + body


def write_outputs(store: RunStore) -> Outputs:
    """Write every output of the run into its directory; returns their paths."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    run_dir = store.dir
    meta = store.meta()
    cfg = meta.get("config", {})
    cands = store.candidates()
    ideas = store.ideas()
    by_id = {c.id: c for c in cands}
    ref_acc = float(meta.get("hv_ref_acc") or 0.0)
    ref_mmacs = meta.get("hv_ref_mmacs")
    front = sorted(front_of(cands), key=lambda c: c.evaluation.macs)
    hv = hypervolume_curve(cands, ref_acc, ref_mmacs)

    models_dir = run_dir / "models"
    models_dir.mkdir(exist_ok=True)
    for old in models_dir.glob("cand_*.py"):  # a rebuilt report keeps only the current front
        old.unlink()
    rows, models = [], []
    for c in front:
        path = models_dir / f"cand_{c.id:04d}.py"
        path.write_text(_model_file(c, lineage(c.id, by_id), ideas, run_dir.name))
        models.append(path)
        ev = c.evaluation
        idea = ideas.get(c.idea_id or "")
        rows.append({"id": c.id, "val_acc": ev.val_acc, "test_acc": ev.test_acc,
                     "mmacs": ev.macs / 1e6, "macs": ev.macs, "params": ev.params,
                     "operator": c.operator, "idea_id": c.idea_id or "",
                     "idea_name": idea.name if idea else "",
                     "papers": [{"id": p.paper_id, "title": p.title or p.paper_id,
                                 "url": (None if p.paper_id.startswith("sha256:")
                                         else f"https://arxiv.org/abs/{p.paper_id}")}
                                for p in (idea.provenance if idea else [])],
                     "category": idea.category.value if idea else "",
                     "parents": " ".join(map(str, c.parents)),
                     "model_file": str(path.relative_to(run_dir))})
    csv_path = run_dir / "pareto.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    pareto_png, hv_png = _plots(cands, front, hv)
    (run_dir / "pareto.png").write_bytes(pareto_png)
    (run_dir / "hypervolume.png").write_bytes(hv_png)

    best = sorted(front, key=lambda c: -c.evaluation.val_acc)[:3]
    lineages = [{"id": c.id, "val_acc": c.evaluation.val_acc, "test_acc": c.evaluation.test_acc,
                 "mmacs": c.evaluation.macs / 1e6, "params": c.evaluation.params,
                 "steps": [_step_text(x, ideas) for x in lineage(c.id, by_id)]}
                for c in best]
    summary = store.summary()
    usage = store.usage()
    env = Environment(loader=PackageLoader("search", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        name=run_dir.name, config=cfg, meta=meta, summary=summary, usage=usage, front=rows,
        hypervolume=float(hv[-1]) if len(hv) else 0.0, ref_acc=ref_acc, ref_mmacs=ref_mmacs,
        idea_rows=idea_table(cands, ref_acc, ref_mmacs, ideas), lineages=lineages,
        repaired=sum(1 for c in cands if c.operator == "repair" and c.valid),
        pareto_png=base64.b64encode(pareto_png).decode(), hv_png=base64.b64encode(hv_png).decode())
    html_path = run_dir / "report.html"
    html_path.write_text(html)
    return Outputs(csv=csv_path, png=run_dir / "pareto.png", hv_png=run_dir / "hypervolume.png",
                   html=html_path, models=models)
