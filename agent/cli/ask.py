"""``archlore ask "a CIFAR-10 network under 50 MFLOPs that uses attention"``.

Turns the request into a Goal (rules offline, the LLM with a JSON schema otherwise), runs a
short targeted FairNAD search with the evaluator, then prints and writes the best valid model
that meets the goal: its code, metrics, and the ideas (and papers) of its lineage.
Exit 0 when such a model was found, 1 when none was, 2 on bad input.

Targeting: ideas of excluded categories are removed from the idea pool; when categories are
required, only ideas of those categories are applied, and the chosen model's lineage must
contain an idea of every required category. archlore counts FLOPs = MACs per image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from archlore.agent import config as paths
from archlore.agent.cli.common import EXIT_NOTHING_FOUND, console, err_console, fail, pct, warn
from rich.markup import escape


class _TargetedKnowledge:
    """A knowledge source restricted to the goal's categories (ideas + their paper chunks)."""

    def __init__(self, ideas: list, source: Any = None) -> None:
        self._ideas = ideas
        self._source = source

    def ideas(self) -> list:
        return list(self._ideas)

    def chunks_for(self, idea_id: str, k: int = 3) -> list:
        if self._source is None or not hasattr(self._source, "chunks_for"):
            return []
        return self._source.chunks_for(idea_id, k)


def targeted_ideas(goal, ideas: list) -> list:
    """Ideas compatible with the goal (see module doc). Raises ValueError when none are left."""
    pool = [i for i in ideas if i.category not in goal.excluded_categories]
    if goal.required_categories:
        pool = [i for i in pool if i.category in goal.required_categories]
        missing = [c.value for c in goal.required_categories
                   if not any(i.category == c for i in pool)]
        if missing:
            raise ValueError(f"no idea of category {', '.join(missing)} in the knowledge base")
    if not pool:
        raise ValueError("the goal excludes every idea in the knowledge base")
    return pool


def best_for_goal(candidates: list, ideas: dict, goal) -> tuple[Any, list] | None:
    """The valid candidate with the best validation accuracy whose lineage uses every required
    category and no excluded one; with its lineage (root first)."""
    from archlore.search.report import lineage

    by_id = {c.id: c for c in candidates}
    best = None
    for c in candidates:
        if not c.valid:
            continue
        chain = lineage(c.id, by_id)
        cats = {ideas[x.idea_id].category for x in chain if x.idea_id in ideas}
        if any(r not in cats for r in goal.required_categories):
            continue
        if any(e in cats for e in goal.excluded_categories):
            continue
        ev = c.evaluation
        if goal.max_mmacs is not None and ev.macs / 1e6 > goal.max_mmacs:
            continue
        if goal.max_params is not None and ev.params > goal.max_params:
            continue
        if best is None or ev.val_acc > best[0].evaluation.val_acc:
            best = (c, chain)
    return best


def _lineage_rows(chain: list, ideas: dict) -> list[dict]:
    rows = []
    for c in chain:
        idea = ideas.get(c.idea_id or "")
        rows.append({
            "id": c.id, "operator": c.operator, "parents": c.parents, "mode": c.mode,
            "idea_id": c.idea_id, "idea": idea.name if idea else None,
            "category": idea.category.value if idea else None,
            "papers": [{"paper_id": p.paper_id, "title": p.title, "page": p.page,
                        "quote": p.quote} for p in (idea.supporting() if idea else [])],
            "val_acc": c.evaluation.val_acc if c.valid else None,
        })
    return rows


def ask_cmd(
    request: str = typer.Argument(..., help='What you want, e.g. "a CIFAR-10 network under '
                                            '50 MFLOPs that uses attention".'),
    dataset: str | None = typer.Option(None, "--dataset", help="Overrides the request's "
                                          "dataset: digits, cifar10, cifar100, imagenet16-120."),
    budget: int = typer.Option(12, "--budget", min=1, help="Candidates to evaluate."),
    llm: str = typer.Option("offline", "--llm", help="offline (default), openai, replay."),
    model: str | None = typer.Option(None, "--model", help="LLM model name (openai)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible server, "
                                           "e.g. http://127.0.0.1:8080/v1 (llama.cpp)."),
    cassette: Path | None = typer.Option(None, "--cassette", help="Replay: cassette to "
                                            "answer from (--llm replay)."),
    record: Path | None = typer.Option(None, "--record", help="Write every LLM call to "
                                          "this cassette (JSONL) for later --llm replay."),
    mode: str = typer.Option("delta", "--mode", help="LLM answer form: delta "
                             "(SEARCH/REPLACE) or full code."),
    max_tokens_total: int | None = typer.Option(None, "--llm-budget-tokens",
                                                   help="Stop LLM calls after this many tokens."),
    out: Path | None = typer.Option(None, "--out", help="Where to write best_model.py and "
                                       "ask.json (default: the run directory)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    seed: int = typer.Option(0, "--seed"),
    epochs: float | None = typer.Option(None, "--epochs", help="Training epochs per "
                                           "candidate (default: the search default)."),
    workers: int | None = typer.Option(None, "--workers"),
    data_root: str | None = typer.Option(None, "--data-root", help="Dataset directory "
                                            "(cifar10 / cifar100 / imagenet16 files)."),
    knowledge: str | None = typer.Option(None, "--knowledge", help="Knowledge store dir "
                                            "(default: the data dir's; else built-in ideas)."),
    name: str | None = typer.Option(None, "--name", help="Run name."),
) -> None:
    """Find a model for a request in plain words. Caps: "under 50 MFLOPs" / "MMACs" (archlore
    counts FLOPs = MACs per image), "200k params"; categories: "uses attention", "without
    dropout"."""
    from archlore.agent.goal import GoalParseError, parse_goal
    from archlore.agent.llm import BudgetExceeded, LLMError
    from archlore.agent.llm_mutator import valid_rate_by_mode
    from archlore.agent.mutators import make_mutator

    try:
        chat_model = None
        if llm != "offline":
            from archlore.agent.llm import create_model

            cfg_llm = dict(model=model, base_url=base_url, max_total_tokens=max_tokens_total,
                           cassette=str(cassette) if cassette else None,
                           record=str(record) if record else None)
            chat_model = create_model(llm, **{k: v for k, v in cfg_llm.items() if v is not None})
        goal = parse_goal(request, model=chat_model)
        if dataset:
            goal = type(goal).model_validate(goal.model_dump() | {"dataset": dataset})
        if chat_model is None:
            mutator = make_mutator("offline")
        else:
            from archlore.agent.llm_mutator import LLMMutator

            mutator = LLMMutator(chat_model, mode=mode)
    except (GoalParseError, ValueError, LLMError, ImportError) as exc:
        fail("ask", exc)
    if chat_model is not None:
        mutator = _GoalMutator(mutator, goal.instruction())

    from archlore.search.config import SearchConfig
    from archlore.search.run import RunExists, run_search
    from archlore.search.store import RunStore
    from archlore.search.strategies.fairnad import load_ideas

    try:
        source = _knowledge_source(knowledge)
        pool = targeted_ideas(goal, load_ideas(source))
        fields: dict[str, Any] = dict(
            name=name, seed=seed, budget=budget, dataset=goal.dataset or "digits",
            data_root=data_root, llm=llm, model=model, max_mflops=goal.max_mmacs,
            max_params=goal.max_params, n_seeds=max(2, min(6, budget // 3)))
        if epochs is not None:
            fields["epochs"] = epochs
        if workers is not None:
            fields["workers"] = workers
        cfg = SearchConfig(**{k: v for k, v in fields.items() if v is not None}).with_name()
        from archlore.evaluator.data import check_available

        check_available(cfg.dataset, data_root)
    except (ValueError, RunExists) as exc:
        fail("ask", exc)

    if not as_json:
        console.print(_goal_line(goal, cfg))
        if (goal.dataset is None and goal.max_mmacs is None and goal.max_params is None
                and not goal.required_categories and not goal.excluded_categories):
            warn("ask", "understood no dataset, cap or category in the request; searching "
                        f"{cfg.dataset} with no caps (say e.g. 'under 1 MFLOPs', "
                        "'uses attention', 'cifar10')")
    run_dir = paths.runs_dir() / cfg.name
    stopped = None
    from archlore.agent.cli.llm_progress import llm_progress, printer

    try:
        with llm_progress(printer(err_console) if not as_json else (lambda p: None)):
            result = run_search(cfg, paths.runs_dir(), mutator=mutator,
                                knowledge=_TargetedKnowledge(pool, source))
        stopped = result.stop_reason  # e.g. the LLM budget ran out: the engine kept what it had
    except BudgetExceeded as exc:  # spent before the run started (goal parsing)
        stopped = str(exc)
    except (RunExists, ValueError) as exc:
        fail("ask", exc)
    if stopped:
        warn("ask", f"{stopped}; using the candidates so far")
    with RunStore(run_dir, create=False) as store:
        candidates = store.candidates()
        ideas = store.ideas()
        counts, usage = store.summary(), store.usage()
    found = best_for_goal(candidates, ideas, goal)
    out_dir = Path(out) if out else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "request": request, "goal": goal.model_dump(mode="json"), "run": cfg.name,
        "run_dir": str(run_dir), "evaluated": counts.get("evaluated"),
        "valid": counts.get("valid"), "llm": llm, "usage": usage.model_dump(),
        "stopped": stopped, "valid_rate_by_mode": valid_rate_by_mode(candidates),
        "found": found is not None,
    }
    if found is not None:
        best, chain = found
        ev = best.evaluation
        summary["best"] = {
            "id": best.id, "val_acc": ev.val_acc, "test_acc": ev.test_acc,
            "mmacs": ev.macs / 1e6, "params": ev.params, "dataset": ev.dataset, "seed": ev.seed,
            "lineage": _lineage_rows(chain, ideas), "code_file": str(out_dir / "best_model.py")}
        (out_dir / "best_model.py").write_text(_model_header(summary) + (best.code or ""))
    (out_dir / "ask.json").write_text(json.dumps(summary, indent=2))
    if as_json:
        print(json.dumps(summary | ({"code": found[0].code} if found else {}), indent=2))
    else:
        _print_result(summary, found[0].code if found else None)
    if found is None:
        raise typer.Exit(EXIT_NOTHING_FOUND)


class _GoalMutator:
    """Adds the user's request to every LLM mutation instruction."""

    def __init__(self, inner, instruction: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.uses_paper_text = inner.uses_paper_text
        self.instruction = instruction

    def unsupported_reason(self, idea, space):
        return self.inner.unsupported_reason(idea, space)

    def mutate(self, request):
        extra = self.instruction
        text = f"{request.instruction}\n{extra}".strip() if extra else request.instruction
        return self.inner.mutate(request.model_copy(update={"instruction": text}))


def _knowledge_source(path: str | None):
    """The knowledge store when one exists (ideas + chunks), else None (built-in corpus)."""
    root = Path(path) if path else paths.knowledge_dir()
    if not path and not any(root.iterdir()):
        return None
    from archlore.knowledge.store import KnowledgeStore, StoreError

    try:
        return KnowledgeStore(root)
    except StoreError as exc:  # damaged ideas.json / papers.json: say which, change nothing
        fail("ask", exc)


def _goal_line(goal, cfg) -> str:
    parts = [f"dataset {cfg.dataset}"]
    if goal.max_mmacs is not None:
        parts.append(f"<= {goal.max_mmacs:g} MMACs (FLOPs = MACs)")
    if goal.max_params is not None:
        parts.append(f"<= {goal.max_params:,} params")
    if goal.required_categories:
        parts.append("uses " + ", ".join(c.value for c in goal.required_categories))
    if goal.excluded_categories:
        parts.append("without " + ", ".join(c.value for c in goal.excluded_categories))
    return (f"[bold]goal[/bold] ({goal.source}): " + "; ".join(parts)
            + f"\nsearching: {cfg.budget} candidates, run {cfg.name}, llm {cfg.llm.backend}")


def _model_header(summary: dict) -> str:
    b = summary["best"]
    lines = [f"archlore ask: {summary['request']}",
             f"candidate #{b['id']} of run {summary['run']}: val acc {pct(b['val_acc'])}, "
             f"test acc {pct(b['test_acc'])}"
             + f", {b['mmacs']:.4f} MMACs per image, {b['params']} params, dataset "
               f"{b['dataset']}, seed {b['seed']}", "lineage (root first):"]
    for row in b["lineage"]:
        step = f"  #{row['id']} {row['operator']}"
        if row["idea"]:
            step += f" + {row['idea']} [{row['category']}]"
        papers = "; ".join(p["title"] or p["paper_id"] for p in row["papers"])
        lines.append(step + (f" from {papers}" if papers else ""))
    return "".join(f"# {line}\n" for line in lines) + "\n"


def _print_result(summary: dict, code: str | None) -> None:
    if code is None:
        console.print(f"[red]no valid model met the goal[/red] ({summary['valid']} valid of "
                      f"{summary['evaluated']} evaluated); try a larger --budget or looser caps."
                      f"\nrun: {summary['run_dir']}")
        return
    from rich.syntax import Syntax

    b = summary["best"]
    if console.is_terminal:
        console.print(Syntax(code, "python", line_numbers=False, word_wrap=True))
    else:  # piped: the code exactly, never cut at the console width
        print(code)
    console.print(f"[bold]best[/bold] #{b['id']}: val acc {100 * b['val_acc']:.2f} %, test acc "
                  + ("n/a" if b["test_acc"] is None else f"{100 * b['test_acc']:.2f} %")
                  + f", {b['mmacs']:.4f} MMACs per image, {b['params']:,} params "
                    f"({b['dataset']}, seed {b['seed']})")
    for row in b["lineage"]:
        if row["idea"]:
            papers = "; ".join(
                (p["title"] or p["paper_id"]) + (f' — "{p["quote"]}"' if p["quote"] else "")
                for p in row["papers"])
            console.print(f"  idea [cyan]{escape(row['idea'])}[/cyan] \\[{row['category']}] "
                          f"(#{row['id']} {row['operator']})"
                          + (f": {escape(papers)}" if papers else ""))
    console.print(f"written: {b['code_file']}, {Path(b['code_file']).parent / 'ask.json'}")


def register(app: typer.Typer) -> None:
    app.command("ask")(ask_cmd)
