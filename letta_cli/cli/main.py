"""The `agents` entry point: global options, command registration, and one-line errors."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from letta_cli.cli import agents_cmds, blocks, inspect_cmds, messaging_cmds, model, transfer, demo_cmd
from letta_cli.cli.common import G, warn
from letta_cli.errors import AgentsError

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
        Optional[str], typer.Option("--workspace", "-w", help="Workspace folder (else $AGENTS_HOME, else found upward).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Stream turn events to stderr.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr, even at a terminal.")] = False,
) -> None:
    G.workspace, G.verbose, G.quiet = workspace, verbose, quiet


for module in (agents_cmds, messaging_cmds, blocks, model, transfer, inspect_cmds, demo_cmd):
    module.register(app)


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; every user error becomes one line on stderr and a documented exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="agents", standalone_mode=False)
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
            warn(f"error: {exc.format_message()} (see --help)")
            code = 2
    except AgentsError as exc:
        warn(f"error: {exc}")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 141
    except Exception as exc:
        if os.environ.get("AGENTS_DEBUG"):
            raise
        warn(f"internal error: {type(exc).__name__}: {exc} (set AGENTS_DEBUG=1 for a traceback)")
        code = 70
    sys.stdout.flush()
    sys.exit(code)
