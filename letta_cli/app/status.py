"""`agents status`: is a scheduler running, how deep is the queue, how many agents, the last activity.
Reads only, and never loads the engine."""

from __future__ import annotations

from typing import Any

from letta_cli.app import daemon_client
from letta_cli.store import history, scheduler_lock
from letta_cli.store.agents import AgentStore
from letta_cli.store.queue import open_queue
from letta_cli.store.workspace import Workspace

TRACE_TAIL_BYTES = 16 * 1024  # enough for the last event


def status(ws: Workspace) -> dict[str, Any]:
    running = ws.state_dir.is_dir() and scheduler_lock.is_held(ws)
    depths = open_queue(ws.queue_dir).depths()
    last = history.tail(ws.trace_path, TRACE_TAIL_BYTES)
    daemon = daemon_client.status(ws) if running else None
    return {
        "workspace": str(ws.root),
        "scheduler": {
            "running": running,
            "pid": scheduler_lock.holder_pid(ws) if running else None,
            "kind": ("daemon" if daemon else "scheduler") if running else None,
        },
        "daemon": None
        if daemon is None
        else {k: daemon.get(k) for k in ("pid", "since", "idle_timeout", "socket", "running_turns", "handled")},
        "queue": depths,
        "dead_letters": depths["dead"],
        "agents": len(AgentStore(ws).names()),
        "last_activity": last[-1].get("ts") if last else None,
        "last_event": last[-1].get("event") if last else None,
    }
