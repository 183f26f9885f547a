"""Entry point: ``archlore [--data-dir DIR] COMMAND ...``.

Each command group lives in its own module with a ``register(app)`` function, so the
CLI grows without one module knowing every command.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import typer
from archlore.agent import config

app = typer.Typer(
    name="archlore",
    help="Neural architecture search driven by design knowledge from papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

_COMMAND_MODULES = (
    "archlore.agent.cli.evaluate",  # archlore evaluate
    "archlore.agent.cli.ideas",  # archlore ingest, archlore ideas ...
    "archlore.agent.cli.search_cmds",  # archlore search, report, runs
    "archlore.agent.cli.ask",  # archlore ask
    "archlore.agent.cli.bench",  # archlore bench nb201
    "archlore.agent.cli.proxy_cmds",  # archlore proxy-check
    "archlore.agent.cli.train_cmds",  # archlore train, archlore export
    "archlore.agent.cli.llm_cmds",  # archlore llm serve
)


@app.callback()
def _global(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", envvar="ARCHLORE_HOME",
        help="Where archlore keeps knowledge and runs (default: the platform's user data dir).",
    ),
) -> None:
    config.set_data_dir(data_dir)


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
