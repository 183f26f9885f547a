"""``archlore llm serve MODEL.gguf``: a local OpenAI-compatible server for any command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

llm_app = typer.Typer(help="Local LLM helpers.", no_args_is_help=True)


@llm_app.command("serve")
def serve_cmd(
    model: Path = typer.Argument(..., help="A GGUF model file you have."),
    port: int = typer.Option(8080, "--port", help="Port on 127.0.0.1."),
    context: int = typer.Option(8192, "--ctx", help="Context tokens per request slot."),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0: all cores)."),
    parallel: int = typer.Option(1, "--parallel", help="Request slots (1 on a CPU)."),
    alias: str = typer.Option("", "--alias", help="Model name to serve (default: file stem)."),
) -> None:
    """Serve MODEL.gguf with llama.cpp (needs the archlore local extra) on 127.0.0.1."""
    from archlore.agent.local_llm import LocalServerError, ServeOptions, serve

    try:
        serve(ServeOptions(model=model, alias=alias, port=port, context=context,
                           threads=threads, parallel=parallel), on_ready=console.print)
    except LocalServerError as exc:
        err_console.print(f"[red]archlore llm serve: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
