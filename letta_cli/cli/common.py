"""What every command shares: the workspace option, output to stdout/stderr, JSON, reading stdin.

Everything printed goes through here or through cli/terminal.py's consoles: model and agent text reaches
the terminal with its control characters written out and known secrets blanked. JSON stays exact (the same
values), with every control character escaped."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

from letta_cli.core.errors import UsageError
from letta_cli.core.text import for_terminal, json_for_terminal
from letta_cli.store.workspace import Workspace


@dataclass
class Globals:
    workspace: str | None = None
    verbose: bool = False
    quiet: bool = False


G = Globals()


def lazy(module_name: str) -> ModuleType:
    """Import a library module on first attribute use, so `agents list` never pays for the engine."""
    import importlib.util

    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def workspace() -> Workspace:
    return Workspace.find(G.workspace)


def use_color(stream: TextIO = sys.stdout) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


_consoles: dict[str, Console] = {}


def out() -> Console:
    """A rich console on stdout: plain text when piped or NO_COLOR is set."""
    if "out" not in _consoles:
        from letta_cli.cli.terminal import SafeConsole

        tty = use_color(sys.stdout)
        # color_system=None drops every escape code (bold, dim too), not only colours
        _consoles["out"] = SafeConsole(
            color_system="auto" if tty else None, no_color=not tty, highlight=False, soft_wrap=not tty
        )
    return _consoles["out"]


def err_console() -> Console:
    if "err" not in _consoles:
        from letta_cli.cli.terminal import SafeConsole

        tty = use_color(sys.stderr)
        _consoles["err"] = SafeConsole(
            stderr=True, color_system="auto" if tty else None, no_color=not tty, highlight=False
        )
    return _consoles["err"]


def write_text(text: str) -> None:
    """Plain text on stdout (no rich), cleaned like everything else."""
    sys.stdout.write(for_terminal(text) + "\n")


def write_json_text(text: str) -> None:
    """A line of JSON text on stdout: the same values, with DEL and C1 controls escaped as well."""
    sys.stdout.write(json_for_terminal(text) + "\n")


def print_json(obj: Any) -> None:
    write_json_text(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def print_json_line(obj: Any) -> None:
    write_json_text(json.dumps(obj, ensure_ascii=False, default=str))


def warn(message: str) -> None:
    sys.stderr.write(f"agents: {for_terminal(message)}\n")


def info(message: str) -> None:
    """Progress for a person at a terminal; silent when piped (quiet by default in scripts)."""
    if not G.quiet and sys.stderr.isatty():
        sys.stderr.write(for_terminal(message) + "\n")


def read_message(message: str | None, what: str = "message") -> str:
    """MESSAGE from the argument, or stdin when it is '-' or missing and stdin is not a terminal."""
    if message is not None and message != "-":
        return message
    if message is None and sys.stdin.isatty():
        raise UsageError(f"no {what}: give it as an argument or on stdin")
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"the {what} on stdin is not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"the {what} on stdin is empty")
    return text.rstrip("\n")


def confirm_or_refuse(yes: bool, question: str) -> None:
    """Deleting asks first at a terminal; elsewhere it needs --yes."""
    if yes:
        return
    if not os.isatty(0):
        raise UsageError("refusing to delete without --yes when not at a terminal")
    import typer

    typer.confirm(question, abort=True, err=True)


def plain_table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """The table as aligned plain text on stdout, for a pipe: the layout of table() without a terminal (cells
    cleaned like the console's, flattened to one line, never folded), and without importing rich."""
    cells = [tuple(for_terminal(c).replace("\n", " ") for c in row) for row in [columns, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    sys.stdout.write("\n".join(lines) + "\n")


def table(*columns: str) -> Table:
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD if use_color() else box.ASCII2, show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    return t
