"""``archlore ingest PATH...`` and ``archlore ideas {schema,list,show,search,export}``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from archlore.agent import config
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)

ideas_app = typer.Typer(help="Browse and search the design ideas in the knowledge store.",
                        no_args_is_help=True)


def _store():
    from archlore.knowledge.store import KnowledgeStore, StoreError

    try:
        return KnowledgeStore(config.knowledge_dir())
    except StoreError as exc:
        err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None


def _extractor(llm: str, model: str | None):
    if llm == "offline":
        from archlore.knowledge.extract_offline import OfflineExtractor

        return OfflineExtractor()
    from archlore.agent.llm.registry import create_model
    from archlore.knowledge.extract_llm import LLMExtractor

    cfg = {"model": model} if model else {}
    return LLMExtractor(create_model(llm, **cfg))


def ingest_cmd(
    paths: list[str] = typer.Argument(..., help="PDF files, directories (recursive) or globs."),
    llm: str = typer.Option("offline", "--llm",
                            help="Extractor: 'offline' (lexicon, default) or an LLM backend."),
    model: str | None = typer.Option(None, "--model", help="Model name for --llm backends."),
) -> None:
    """Ingest papers: extract design ideas and index their text (idempotent per file hash)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    store = _store()
    try:
        extractor = _extractor(llm, model)
    except Exception as exc:
        err_console.print(f"[red]error:[/] cannot set up extractor {llm!r}: {exc}")
        raise typer.Exit(2) from exc
    tasks: dict[Path, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:

        def progress(path: Path, fraction: float, stage: str) -> None:
            if path not in tasks:
                tasks[path] = bar.add_task(path.name[:40], total=1.0, stage=stage)
            bar.update(tasks[path], completed=fraction, stage=stage)

        summary = store.ingest(paths, extractor=extractor, progress=progress)

    table = Table(title="ingest summary")
    for col in ("file", "status", "paper", "pages", "chunks", "ideas new", "ideas merged", "note"):
        table.add_column(col, overflow="fold")
    for f in summary.files:
        style = {"ingested": "green", "skipped": "yellow", "error": "red"}[f.status]
        table.add_row(str(f.path), f"[{style}]{f.status}[/]", f.paper_id, str(f.pages),
                      str(f.chunks), str(f.ideas_new), str(f.ideas_merged), f.error)
    table.add_row("[b]total[/]", f"{summary.ingested} ok / {summary.skipped} skipped / "
                  f"{len(summary.errors)} errors", "", str(summary.pages), str(summary.chunks),
                  str(summary.ideas_new), str(summary.ideas_merged), "")
    console.print(table)
    for f in summary.errors:  # one unwrapped line per bad file, whatever the terminal width
        console.print(Text.assemble(("error: ", "red"), f"{f.path}: {f.error}"), soft_wrap=True)
    if not summary.ok:
        raise typer.Exit(1)


@ideas_app.command("schema")
def schema_cmd() -> None:
    """Print the JSON schema of an Idea (the template the LLM extractor fills)."""
    from archlore.knowledge.schema import Idea

    typer.echo(json.dumps(Idea.model_json_schema(), indent=2))


def _category(value: str | None):
    if value is None:
        return None
    from archlore.knowledge.schema import Category

    try:
        return Category(value)
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise typer.BadParameter(f"unknown category {value!r}; one of: {valid}") from None


def _first_source(idea) -> str:
    if not idea.provenance:
        return ""
    p = idea.provenance[0]
    page = f" p.{p.page}" if p.page else ""
    return f"{p.paper_id}{page}"


@ideas_app.command("list")
def list_cmd(
    category: str | None = typer.Option(None, "--category", "-c", help="Only this category."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List ideas (optionally one category)."""
    cat = _category(category)
    ideas = _store().ideas(cat)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in ideas], indent=1))
        return
    table = Table(title=f"{len(ideas)} ideas")
    for col in ("id", "category", "name", "source", "applicable", "sources", "first source"):
        table.add_column(col, overflow="fold")
    for i in ideas:
        table.add_row(i.id, i.category.value, i.name, i.source,
                      "yes" if i.applicable_offline else "no", str(len(i.provenance)),
                      _first_source(i))
    console.print(table)


@ideas_app.command("show")
def show_cmd(idea_id: str = typer.Argument(..., help="Idea id (see `archlore ideas list`).")) -> None:
    """Show one idea in full, with its provenance."""
    idea = _store().get(idea_id)
    if idea is None:
        err_console.print(f"[red]error:[/] no idea with id {idea_id!r}")
        raise typer.Exit(1)
    typer.echo(json.dumps(idea.model_dump(mode="json"), indent=2))


@ideas_app.command("search")
def search_cmd(
    query: str = typer.Argument(..., help="Free-text query."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of hits."),
    category: str | None = typer.Option(None, "--category", "-c"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Semantic search over ideas (MiniLM cosine similarity)."""
    hits = _store().search(query, k=k, category=_category(category))
    if as_json:
        typer.echo(json.dumps([{
            "id": h.idea.id, "score": round(h.score, 4), "category": h.idea.category.value,
            "name": h.idea.name,
            "provenance": [p.model_dump(mode="json", include={"paper_id", "title", "page"})
                           for p in h.idea.provenance]} for h in hits], indent=1))
        return
    table = Table(title=f"search: {query}")
    for col in ("score", "id", "category", "name", "paper", "title", "page"):
        table.add_column(col, overflow="fold")
    for h in hits:
        p = h.idea.provenance[0] if h.idea.provenance else None
        table.add_row(f"{h.score:.3f}", h.idea.id, h.idea.category.value, h.idea.name,
                      p.paper_id if p else "", p.title if p else "",
                      str(p.page) if p and p.page else "")
    console.print(table)


@ideas_app.command("export")
def export_cmd(
    fmt: str = typer.Option("json", "--format", "-f", help="Export format (json)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default stdout)."),
) -> None:
    """Export every idea and paper."""
    if fmt != "json":
        raise typer.BadParameter(f"unsupported format {fmt!r}; supported: json")
    store = _store()
    text = json.dumps({"ideas": [i.model_dump(mode="json") for i in store.ideas()],
                       "papers": [p.model_dump(mode="json") for p in store.papers()]}, indent=1)
    if output is None:
        typer.echo(text)
    else:
        try:
            output.write_text(text)
        except OSError as exc:
            err_console.print(f"[red]error:[/] cannot write {output}: {exc.strerror or exc}",
                              soft_wrap=True)
            raise typer.Exit(1) from None
        err_console.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.add_typer(ideas_app, name="ideas")
