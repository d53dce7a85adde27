"""The `agents` entry point: global options, command registration, and one-line errors."""

from __future__ import annotations

import gc
import os
import sys
from typing import Annotated

import typer

from letta_cli.cli.common import G, warn
from letta_cli.core.errors import AgentsError
from letta_cli.core.text import escape_newlines

app = typer.Typer(
    name="agents",
    help="Letta-style multi-agent systems in the shell, with all state in plain files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_options(
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Workspace folder (else $AGENTS_HOME, else found upward).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Stream turn events to stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr, even at a terminal.")] = False,
) -> None:
    G.workspace, G.verbose, G.quiet = workspace, verbose, quiet


# Which module registers each top-level command: a run imports only the module it needs (start-up time).
# tests/test_cli_registry.py checks this table against what the modules really register.
COMMAND_MODULES = {
    **dict.fromkeys(("init", "create", "list", "show", "delete", "tag", "edit"), "agents_cmds"),
    **dict.fromkeys(("send", "broadcast", "run", "stop"), "messaging_cmds"),
    **dict.fromkeys(("blocks", "memory"), "blocks"),
    "model": "model",
    **dict.fromkeys(("import", "export"), "transfer"),
    **dict.fromkeys(("history", "trace", "usage", "status"), "inspect_cmds"),
    "queue": "queue_cmds",
    "tools": "tools_cmds",
    "demo": "demo_cmd",
}
GLOBAL_OPTIONS_WITH_VALUE = {"-w", "--workspace"}


def command_name(argv: list[str]) -> str | None:
    """The top-level command in argv, skipping the global options."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def register_commands(argv: list[str]) -> None:
    """Register the command argv asks for, or every command (for help, or an unknown name)."""
    import importlib

    wanted = COMMAND_MODULES.get(command_name(argv) or "")
    for name in dict.fromkeys(COMMAND_MODULES.values()):
        if wanted is None or name == wanted:
            importlib.import_module(f"letta_cli.cli.{name}").register(app)


def _is_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; every user error becomes one line on stderr and a documented exit code."""
    args = argv if argv is not None else sys.argv[1:]
    bad = next((i for i, arg in enumerate(args, 1) if not _is_utf8(arg)), None)
    if bad is not None:  # bytes the OS gave that are not UTF-8 arrive as lone surrogates, which nothing stores
        warn(f"error: argument {bad} is not valid UTF-8 text")
        sys.exit(2)
    register_commands(args)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="agents", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        warn("aborted")
        code = 130
    except typer.TyperException as exc:  # usage errors from the parser
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(exc.format_message() + "\n")
            code = 0
        else:
            warn(f"error: {escape_newlines(exc.format_message())} (see --help)")
            code = 2
    except AgentsError as exc:
        warn(f"error: {escape_newlines(str(exc))}")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 141
    except Exception as exc:
        if os.environ.get("AGENTS_DEBUG"):
            raise
        warn(f"internal error: {type(exc).__name__}: {escape_newlines(str(exc))} (set AGENTS_DEBUG=1 for a traceback)")
        code = 70
    sys.stdout.flush()
    gc.freeze()  # nothing is collected at exit anyway; this spares the final pass over every object
    sys.exit(code)
