"""What every command shares: consoles, the one-line error style, exit codes, units.

Exit codes: 0 done; 1 ran but found/scored nothing acceptable (``ask`` without a model
meeting the goal, ``evaluate`` with a status other than ``ok``); 2 bad input or setup (one
line on stderr: ``archlore COMMAND: what is wrong``); 130 interrupted or stopped early
(resumable). Accuracies are printed as percentages; ``--json`` output keeps fractions.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

EXIT_OK, EXIT_NOTHING_FOUND, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# soft_wrap: a long line (a path, a run name, code) is never broken or cut by the console;
# the terminal folds it, and a pipe gets it whole
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(command: str, message: object, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``archlore COMMAND: message`` on stderr (markup in the message shown as text)
    and exit with ``code``."""
    if isinstance(message, KeyError) and message.args:  # str(KeyError) quotes its message
        message = message.args[0]
    text = " ".join(str(message).split()) if "\n" not in str(message) else str(message)
    err_console.print(f"[red]archlore {command}:[/red] {escape(text)}")
    raise typer.Exit(code)


def warn(command: str, message: str) -> None:
    err_console.print(f"[yellow]archlore {command}:[/yellow] {escape(message)}")


def pct(fraction: float | None, digits: int = 2) -> str:
    """An accuracy fraction as a percentage string ('-' when missing)."""
    return "-" if fraction is None else f"{100 * fraction:.{digits}f} %"


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else mixed in."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
