"""``archlore ingest PATH...`` and ``archlore ideas {schema,list,show,search,export}``."""

from __future__ import annotations

import json
import re
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


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value: object, limit: int | None = None) -> Text:
    """Untrusted text (PDF titles, file names, quotes) for the terminal: control characters
    (escape sequences that recolour or move the cursor) shown as U+FFFD, and wrapped in a
    ``Text`` so rich never reads ``[/b]`` in it as markup."""
    text = _CONTROL.sub("\ufffd", str(value))
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return Text(text)


def _store():
    from archlore.knowledge.store import KnowledgeStore, StoreError

    try:
        return KnowledgeStore(config.knowledge_dir())
    except StoreError as exc:
        err_console.print(Text.assemble(("error: ", "red"), safe(exc)), soft_wrap=True)
        raise typer.Exit(1) from None


def _extractor(llm: str, model: str | None):
    if llm == "offline":
        from archlore.knowledge.extract_offline import OfflineExtractor

        return OfflineExtractor()
    from archlore.agent.llm.registry import create_model
    from archlore.knowledge.extract_llm import LLMExtractor

    cfg = {"model": model} if model else {}
    return LLMExtractor(create_model(llm, **cfg), validate_edits=edit_validator())


def edit_validator():
    """A check that LLM-written edits apply to the open space's seed nets (raises if not);
    None when the search package is unavailable."""
    try:
        from archlore.search.spaces.open import OpenSpace, apply_edits
    except ImportError:
        return None
    seeds = OpenSpace().seeds()

    def check(edits) -> None:
        if not any(apply_edits(seed, edits).key() != seed.key() for seed in seeds):
            raise ValueError("the edits change no seed net")

    return check


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
        err_console.print(Text.assemble(("error: ", "red"),
                                        safe(f"cannot set up extractor {llm!r}: {exc}")))
        raise typer.Exit(2) from exc
    tasks: dict[Path, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                  TimeElapsedColumn(), console=err_console, transient=False) as bar:

        def progress(path: Path, fraction: float, stage: str) -> None:
            if path not in tasks:
                tasks[path] = bar.add_task(_markup_free(path.name[:40]), total=1.0,
                                           stage=_markup_free(stage))
            bar.update(tasks[path], completed=fraction, stage=_markup_free(stage))

        summary = store.ingest(paths, extractor=extractor, progress=progress)

    table = Table(title="ingest summary")
    for col in ("file", "status", "paper", "pages", "chunks", "ideas new", "ideas merged", "note"):
        table.add_column(col, overflow="fold")
    for f in summary.files:
        status = "no ideas" if f.status == "ingested" and f.warning else f.status
        style = {"ingested": "green", "skipped": "yellow", "error": "red",
                 "no ideas": "yellow"}[status]
        table.add_row(safe(f.path), Text(status, style=style), safe(f.paper_id), str(f.pages),
                      str(f.chunks), str(f.ideas_new), str(f.ideas_merged),
                      safe(f.error or f.warning))
    table.add_row(Text("total", style="bold"), f"{summary.ingested} ok / {summary.skipped} "
                  f"skipped / {len(summary.errors)} errors", "", str(summary.pages),
                  str(summary.chunks), str(summary.ideas_new), str(summary.ideas_merged), "")
    console.print(table)
    for f in summary.errors:  # one unwrapped line per bad file, whatever the terminal width
        console.print(Text.assemble(("error: ", "red"), safe(f"{f.path}: {f.error}")),
                      soft_wrap=True)
    for f in summary.files:  # ingested, but nothing verifiable came out of it: say so per file
        if f.status == "ingested" and f.warning:
            console.print(Text.assemble(("warning: ", "yellow"), safe(f"{f.path}: {f.warning}")),
                          soft_wrap=True)
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
    support = idea.supporting()
    if not support:
        return ""
    p = support[0]
    page = f" p.{p.page}" if p.page else ""
    return f"{p.paper_id}{page}"


def _markup_free(text: str) -> str:
    """For rich APIs that only take markup strings (progress descriptions)."""
    from rich.markup import escape

    return escape(_CONTROL.sub("\ufffd", text))


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
    for col in ("id", "category", "name", "source", "applies", "sources", "first source"):
        table.add_column(col, overflow="fold")
    for i in ideas:
        table.add_row(safe(i.id), i.category.value, safe(i.name), i.source,
                      "offline" if i.applicable_offline else "LLM only",
                      str(len(i.supporting())), safe(_first_source(i)))
    console.print(table)


@ideas_app.command("show")
def show_cmd(idea_id: str = typer.Argument(..., help="Idea id (see `archlore ideas list`).")) -> None:
    """Show one idea in full, with its provenance."""
    idea = _store().get(idea_id)
    if idea is None:
        err_console.print(Text.assemble(("error: ", "red"), safe(f"no idea with id {idea_id!r}")))
        raise typer.Exit(1)
    typer.echo(json.dumps(idea.model_dump(mode="json"), indent=2))


@ideas_app.command("search")
def search_cmd(
    query: str = typer.Argument(..., help="Free-text query."),
    k: int = typer.Option(10, "--k", "-k", min=1, help="Number of hits."),
    category: str | None = typer.Option(None, "--category", "-c"),
    passages: int = typer.Option(3, "--passages", "-p", min=0,
                                 help="Also show the N paper passages closest to the query."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Semantic search over ideas and the text of ingested papers (MiniLM cosine)."""
    store = _store()
    hits = store.search(query, k=k, category=_category(category))
    chunk_hits = store.search_chunks(query, k=passages) if passages else []
    if as_json:
        typer.echo(json.dumps({
            "ideas": [{
                "id": h.idea.id, "score": round(h.score, 4), "category": h.idea.category.value,
                "name": h.idea.name, "applicable_offline": h.idea.applicable_offline,
                "provenance": [p.model_dump(mode="json", include={"paper_id", "title", "page",
                                                                  "quote", "role"})
                               for p in h.idea.supporting()]} for h in hits],
            "passages": [{"score": round(c.score, 4), "paper_id": c.chunk.paper_id,
                          "title": c.title, "page": c.chunk.page, "section": c.chunk.section,
                          "text": c.chunk.text} for c in chunk_hits]}, indent=1))
        return
    table = Table(title=Text(f"ideas: {_CONTROL.sub('', query)}"))
    for col in ("score", "id", "category", "name", "supported by", "passage"):
        table.add_column(col, overflow="fold")
    for h in hits:
        support = h.idea.supporting()
        p = next((x for x in support if x.quote), support[0] if support else None)
        where = f"{p.paper_id}" + (f" p.{p.page}" if p and p.page else "") if p else ""
        table.add_row(f"{h.score:.3f}", safe(h.idea.id), h.idea.category.value,
                      safe(h.idea.name), safe(where), safe(p.quote if p else "", 160))
    console.print(table)
    if chunk_hits:
        ptable = Table(title=Text(f"paper passages: {_CONTROL.sub('', query)}"))
        for col in ("score", "paper", "title", "page", "section", "passage"):
            ptable.add_column(col, overflow="fold")
        for c in chunk_hits:
            ptable.add_row(f"{c.score:.3f}", safe(c.chunk.paper_id), safe(c.title, 60),
                           str(c.chunk.page), safe(c.chunk.section, 40),
                           safe(" ".join(c.chunk.text.split()), 240))
        console.print(ptable)


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
            err_console.print(Text.assemble(("error: ", "red"), safe(
                f"cannot write {output}: {exc.strerror or exc}")), soft_wrap=True)
            raise typer.Exit(1) from None
        err_console.print(safe(f"wrote {output}"))


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.add_typer(ideas_app, name="ideas")
