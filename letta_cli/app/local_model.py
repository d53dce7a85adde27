"""The embedded local model as library calls: what `agents model serve | status | stop | path` do.

Each returns the --json shape of its command (docs/local-model.md): the server's record, whether it runs and
answers, and where its log is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from letta_cli.model import llama_command, local, local_setup
from letta_cli.store.workspace import Workspace


def _server_json(ws: Workspace, server: local.ServerInfo | None) -> dict[str, Any]:
    data: dict[str, object] = {"running": server is not None, "ready": bool(server and server.ready)}
    if server is not None:
        data.update(server.model_dump(mode="json"))
    data["log"] = str(local.log_path(ws))
    return data


def serve(ws: Workspace, *, port: int | None = None) -> dict[str, Any]:
    """Start the server in the background (or find the running one) and wait until it answers."""
    return _server_json(ws, local.serve(ws, port=port))


def serve_foreground(ws: Workspace, *, port: int | None = None, on_start: Callable[[dict[str, Any]], None]) -> int:
    """Run the server attached to this terminal until it exits or Ctrl-C; its exit code. `on_start` gets the
    server's record once the process is spawned (before it answers)."""
    return local.serve_foreground(ws, port=port, on_start=lambda server: on_start(_server_json(ws, server)))


def status(ws: Workspace) -> dict[str, Any]:
    """Whether the workspace's server runs and answers, and where."""
    return _server_json(ws, local.status(ws))


def installed() -> bool:
    """Could the local model be served here (llama.cpp's server and the weights are installed)?"""
    return local_setup.is_available()


def stop(ws: Workspace) -> bool:
    """Stop the workspace's server; False if none ran."""
    return local.stop(ws)


def weights() -> dict[str, Any]:
    """Where the weights are (LocalModelMissing if they are not installed), the file the server loads (their
    Q8_0 copy, made on its first start, or the file $LETTA_CLI_GGUF names), and whether the server is installed."""
    gguf = local_setup.gguf_path()
    served, _ = llama_command.served_weights(gguf)
    return {"gguf": str(gguf), "served": str(served), "server_installed": local_setup.server_missing() is None}
