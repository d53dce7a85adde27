"""cli: the `agents` command, one module per command group, each a thin shell: parse the arguments, call
letta_cli.app, render the result (rich at a terminal, plain when piped, JSON with --json).

May import letta_cli.app, letta_cli.core, and the Workspace type of letta_cli.store.workspace; no file I/O
and no state logic here.
"""

import os

# pydantic looks for plugins (every installed distribution's entry points) when it builds the first model;
# the CLI uses none, and that scan is a measurable part of its start-up (docs/benchmarks.md, #18).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
