"""cli: the `agents` command, one module per command group, each a thin shell: parse the arguments, call
letta_cli.app, render the result (rich at a terminal, plain when piped, JSON with --json).

May import letta_cli.app, letta_cli.core, and the Workspace type of letta_cli.store.workspace; no file I/O
and no state logic here.
"""
