"""Outputs of a run, rebuilt from its store alone (``archlore report NAME``).

In the run directory:
- ``pareto.csv``: one row per Pareto-front member over the run's objectives (default
  validation accuracy up, MACs per image down; any 2 or 3 registered objectives);
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
from archlore.search.feedback import IdeaStats, objective_values
from archlore.search.front import FrontTracker, front_of, hypervolume_curve
from archlore.search.objectives import Objective, get_objectives
from archlore.search.records import Candidate
from archlore.search.store import RunStore

# Always in the CSV (raw units), whatever the objectives; objective columns are added.
CSV_FIELDS = ["id", "val_acc", "test_acc", "mmacs", "macs", "params", "latency_ms",
              "operator", "idea_id", "category", "parents", "model_file"]


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
            for p in idea.supporting()]


def _metrics_text(c: Candidate, objectives: list[Objective]) -> str:
    ev = c.evaluation
    if ev is None:
        return c.status
    if not c.valid:
        return f"{ev.status} at {ev.stage}"
    return ", ".join(f"{o.name} {o.display(o.value(ev), 4 if o.name == 'macs' else 2)}"
                     for o in objectives)


def _step_text(c: Candidate, ideas: dict[str, Idea], objectives: list[Objective]) -> str:
    idea = ideas.get(c.idea_id or "")
    metrics = _metrics_text(c, objectives)
    what = f"#{c.id} {c.operator}"
    if c.parents:
        what += " of " + ", ".join(f"#{p}" for p in c.parents)
    if idea is not None:
        what += f" + idea '{idea.name}' [{idea.category.value}]"
    papers = _papers(idea)
    return f"{what}: {metrics}" + (f"; from: {'; '.join(papers)}" if papers else "")


def idea_table(cands: list[Candidate], objectives: list[Objective], refs: list[float | None],
               ideas: dict[str, Idea]) -> list[dict[str, Any]]:
    """Per-idea statistics recomputed from the candidates in tell order; ``mean_delta`` in
    display units per objective."""
    stats = IdeaStats()
    tracker = FrontTracker(objectives, refs)
    by_id = {c.id: c for c in cands}
    for c in cands:
        if c.status == "duplicate":
            continue
        on_front = tracker.add_candidate(c)
        parent = by_id.get(c.parents[0]) if c.parents else None
        stats.record(c.idea_id, objective_values(c, objectives),
                     objective_values(parent, objectives), on_front)
    rows = []
    for iid, d in stats.as_dict().items():
        idea = ideas.get(iid)
        shown = {o.name: d["mean_delta"][o.name] * o.scale if o.name in d["mean_delta"] else None
                 for o in objectives}
        rows.append({"id": iid, "name": idea.name if idea else iid,
                     "category": idea.category.value if idea else "", **d, "delta": shown})
    return sorted(rows, key=lambda r: (r["category"], r["id"]))


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plots(cands: list[Candidate], front: list[Candidate], hv: Any,
           objectives: list[Objective]) -> tuple[bytes, bytes]:
    """Front plot of the first objective (y) against the second (x); a third objective
    colours the points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qy, cx = objectives[0], objectives[1]
    third = objectives[2] if len(objectives) > 2 else None
    valid = [c for c in cands if objective_values(c, objectives) is not None]

    def xy(c: Candidate) -> tuple[float, float]:
        return cx.value(c.evaluation) * cx.scale, qy.value(c.evaluation) * qy.scale

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [xy(c) for c in valid]
    colour: Any = "#9aa5b1"
    if third is not None and valid:
        colour = [third.value(c.evaluation) * third.scale for c in valid]
    sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, c=colour,
                    cmap="viridis" if third is not None else None,
                    label=f"candidates ({len(valid)} valid)")
    if third is not None and valid:
        fig.colorbar(sc, ax=ax, label=third.label)
    fr = sorted(front, key=lambda c: cx.minimised(cx.value(c.evaluation)))
    xs = [xy(c)[0] for c in fr]
    ys = [xy(c)[1] for c in fr]
    ax.step(xs, ys, where="post", color="#d1495b", lw=1.5)
    ax.scatter(xs, ys, s=30, c="#d1495b", label=f"Pareto front ({len(fr)})", zorder=3)
    for i, (c, x, y) in enumerate(zip(fr, xs, ys, strict=True)):
        # alternate below-right / above-left so neighbouring front members' ids don't overlap
        below = i % 2 == 0
        ax.annotate(f"#{c.id}", (x, y), textcoords="offset points", fontsize=8,
                    xytext=(4, -11) if below else (-4, 5), ha="left" if below else "right")
    ax.set_xlabel(cx.label + (" per image" if cx.name == "macs" else ""))
    ax.set_ylabel(qy.label)
    if valid and min(p[0] for p in pts) > 0:
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


def evaluate_command(path: str, recipe: dict[str, Any]) -> str:
    """The ``archlore evaluate`` line that re-scores a model file with the run's recipe."""
    parts = [f"archlore evaluate {path}", f"--dataset {recipe.get('dataset', 'digits')}"]
    for key in ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "label_smoothing",
                "seed"):
        if recipe.get(key) is not None:
            parts.append(f"--{key.replace('_', '-')} {recipe[key]}")
    return " ".join(parts)


def _model_file(c: Candidate, chain: list[Candidate], ideas: dict[str, Idea], run: str,
                objectives: list[Objective], recipe: dict[str, Any]) -> str:
    ev = c.evaluation
    head = [f"archlore run {run}: candidate #{c.id} (on the Pareto front)",
            f"val acc {100 * ev.val_acc:.2f} %, test acc "
            + (f"{100 * ev.test_acc:.2f} %" if ev.test_acc is not None else "n/a")
            + (f", {ev.macs / 1e6:.4f} MMACs per image" if ev.macs is not None else "")
            + (f", {ev.params} params" if ev.params is not None else "")
            + (f", {ev.metrics['latency_ms']:.3f} ms per image" if "latency_ms" in ev.metrics
               else ""),
            f"dataset {ev.dataset}, seed {ev.seed}",
            "recipe: " + ", ".join(f"{k}={v}" for k, v in recipe.items()),
            "reproduce: " + evaluate_command(f"cand_{c.id:04d}.py", recipe),
            "lineage (root first):"]
    head += ["  " + _step_text(x, ideas, objectives) for x in chain]
    body = c.code or f"# table-space architecture: {c.arch}\n"
    return "".join(f"# {line}\n" for line in head) + "\n" + body


def hypervolume_refs(cands: list[Candidate], objectives: list[Objective],
                     refs: list[float | None]) -> list[float | None]:
    """The references the curve actually used (None ones are fixed from the first point)."""
    tracker = FrontTracker(objectives, refs)
    for c in cands:
        if tracker.add_candidate(c):
            break
    return tracker.refs


def _backends(cands: list[Candidate]) -> dict[str, int]:
    """How many candidates each machine/backend scored (``Evaluation.scored_by``)."""
    out: dict[str, int] = {}
    for c in cands:
        if c.evaluation is not None and c.evaluation.scored_by:
            out[c.evaluation.scored_by] = out.get(c.evaluation.scored_by, 0) + 1
    return out


def write_outputs(store: RunStore) -> Outputs:
    """Write every output of the run into its directory; returns their paths."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    run_dir = store.dir
    meta = store.meta()
    cfg = meta.get("config", {})
    try:  # the saved config in today's shape (a run of the first format has flat keys)
        from archlore.search.config import SearchConfig

        cfg = SearchConfig.model_validate(cfg).model_dump(mode="json")
    except ValueError:
        pass
    cands = store.candidates()
    ideas = store.ideas()
    by_id = {c.id: c for c in cands}
    objectives = get_objectives(meta.get("objectives") or ["val_acc", "macs"])
    saved_refs = meta.get("hv_refs") or {}
    if not saved_refs and "hv_ref_mmacs" in meta:  # a run of the first format
        saved_refs = {"val_acc": float(meta.get("hv_ref_acc") or 0.0),
                      "macs": (meta["hv_ref_mmacs"] or 0) * 1e6 or None}
    refs = [saved_refs.get(o.name) for o in objectives]
    recipe = meta.get("recipe") or {}
    cost = objectives[1]
    front = sorted(front_of(cands, objectives),
                   key=lambda c: cost.minimised(cost.value(c.evaluation)))
    hv = hypervolume_curve(cands, objectives, refs)

    models_dir = run_dir / "models"
    models_dir.mkdir(exist_ok=True)
    for old in models_dir.glob("cand_*.py"):  # a rebuilt report keeps only the current front
        old.unlink()
    rows, models = [], []
    for c in front:
        path = models_dir / f"cand_{c.id:04d}.py"
        path.write_text(_model_file(c, lineage(c.id, by_id), ideas, run_dir.name, objectives,
                                    recipe))
        models.append(path)
        ev = c.evaluation
        idea = ideas.get(c.idea_id or "")
        rows.append({"id": c.id, "val_acc": ev.val_acc, "test_acc": ev.test_acc,
                     "mmacs": ev.macs / 1e6 if ev.macs is not None else None, "macs": ev.macs,
                     "params": ev.params, "latency_ms": ev.metrics.get("latency_ms"),
                     "rung": (int(ev.metrics["rung"]) if "rung" in ev.metrics else None),
                     "epochs": ev.metrics.get("fidelity_epochs"),
                     **{o.name: o.value(ev) for o in objectives if o.name not in CSV_FIELDS},
                     "shown": {o.name: o.display(o.value(ev), 4 if o.name == "macs" else 2)
                               for o in objectives},
                     "operator": c.operator, "idea_id": c.idea_id or "",
                     "idea_name": idea.name if idea else "",
                     "papers": [{"id": p.paper_id, "title": p.title or p.paper_id,
                                 "url": (None if p.paper_id.startswith("sha256:")
                                         else f"https://arxiv.org/abs/{p.paper_id}")}
                                for p in (idea.supporting() if idea else [])],
                     "category": idea.category.value if idea else "",
                     "parents": " ".join(map(str, c.parents)),
                     "model_file": str(path.relative_to(run_dir))})
    csv_path = run_dir / "pareto.csv"
    with csv_path.open("w", newline="") as fh:
        fields = CSV_FIELDS + [o.name for o in objectives if o.name not in CSV_FIELDS]
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    pareto_png, hv_png = _plots(cands, front, hv, objectives)
    (run_dir / "pareto.png").write_bytes(pareto_png)
    (run_dir / "hypervolume.png").write_bytes(hv_png)

    first = objectives[0]
    best = sorted(front, key=lambda c: first.minimised(first.value(c.evaluation)))[:3]
    lineages = [{"id": c.id, "metrics": _metrics_text(c, objectives),
                 "test_acc": c.evaluation.test_acc,
                 "steps": [_step_text(x, ideas, objectives) for x in lineage(c.id, by_id)]}
                for c in best]
    summary = store.summary()
    usage = store.usage()
    env = Environment(loader=PackageLoader("archlore.search", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        name=run_dir.name, config=cfg, meta=meta, summary=summary, usage=usage, front=rows,
        hypervolume=float(hv[-1]) if len(hv) else 0.0, objectives=objectives,
        refs=[o.display(r, 4) for o, r in zip(objectives, hypervolume_refs(cands, objectives, refs),
                                               strict=True)],
        idea_rows=idea_table(cands, objectives, refs, ideas), lineages=lineages,
        recipe=recipe, backends=_backends(cands),
        repaired=sum(1 for c in cands if c.operator == "repair" and c.valid),
        pareto_png=base64.b64encode(pareto_png).decode(), hv_png=base64.b64encode(hv_png).decode())
    html_path = run_dir / "report.html"
    html_path.write_text(html)
    return Outputs(csv=csv_path, png=run_dir / "pareto.png", hv_png=run_dir / "hypervolume.png",
                   html=html_path, models=models)
