"""The embedded local model: agents model serve | status | stop | path."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from letta_cli.cli.common import info, lazy, out, print_json, warn, workspace

localmodel = lazy("letta_cli.app.local_model")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/local-model.md).")]

model_app = typer.Typer(
    name="model",
    help=(
        'The embedded local model (SmolLM2-135M-Instruct via llama.cpp), for agents whose model is "local".\n\n'
        "It starts on demand; these commands start it ahead of time, show it, or stop it.\n\n"
        "Example: agents model serve && agents model status --json | jq -r .base_url"
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app)


@model_app.command("serve")
def serve_cmd(
    port: Annotated[int | None, typer.Option("--port", "-p", help="Port on 127.0.0.1 (default: a free one).")] = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", "-f", help="Stay attached and show the server's output until Ctrl-C.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start the local model server in the background (or return the running one) and wait until it answers.

    Examples:
      agents model serve                # prints the base URL: http://127.0.0.1:PORT/v1
      agents model serve -p 8080 --json
      agents model serve --foreground   # debug: the server's log on this terminal
    """
    ws = workspace()
    if foreground:

        def started(server: dict[str, Any]) -> None:
            warn(f"serving {server['base_url']} (model {server['model']}); Ctrl-C stops it")

        raise typer.Exit(localmodel.serve_foreground(ws, port=port, on_start=started))
    info("starting the local model server...")
    server = localmodel.serve(ws, port=port)
    if json_out:
        print_json(server)
    else:
        out().print(server["base_url"])


@model_app.command("status")
def status_cmd(json_out: JsonOpt = False) -> None:
    """Show whether this workspace's local model server runs, where, and which weights it serves.

    Exit code 0 whether or not it runs; check "running" and "ready" in --json.

    Example: agents model status --json | jq -r 'select(.ready) | .base_url'
    """
    server = localmodel.status(workspace())
    if json_out:
        print_json(server)
        return
    if not server["running"]:
        installed = "installed" if localmodel.installed() else "not installed"
        out().print(f"not running (local model {installed})")
        return
    state = "ready" if server["ready"] else "starting"
    out().print(f"{state}: {server['base_url']}  model={server['model']}  pid={server['pid']}  log={server['log']}")


@model_app.command("stop")
def stop_cmd(json_out: JsonOpt = False) -> None:
    """Stop this workspace's local model server (SIGTERM, then SIGKILL after 10 s). Idempotent.

    Example: agents model stop --json    # {"stopped": true}, or false if none was running
    """
    stopped = localmodel.stop(workspace())
    if json_out:
        print_json({"stopped": stopped})
    else:
        out().print("stopped" if stopped else "not running")


@model_app.command("path")
def path_cmd(json_out: JsonOpt = False) -> None:
    """Print the path of the installed model weights (.gguf); fails if they are not installed.

    The server loads their Q8_0 copy, made in ~/.cache/letta-cli on its first start ("served" in --json),
    or the file $LETTA_CLI_GGUF names, as it is.

    Example: ls -lh "$(agents model path)"; agents model path --json | jq -r .served
    """
    weights = localmodel.weights()
    if json_out:
        print_json(weights)
    else:
        out().print(weights["gguf"], markup=False)
