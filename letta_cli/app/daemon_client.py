"""A sender's side of the scheduler daemon (app/daemon.py): find it, start it on demand, hand it the caller's
environment and wait on its socket for the replies.

Light on purpose: a sender imports sockets and JSON, never asyncio, the engine or the openai SDK, so one
`agents send` costs a process start, a publish and a round trip. Every failure to reach a daemon means "serve
in-process as before" (app/messaging), never an error: the durable queue is the truth, the daemon only a
faster way to serve it.

The protocol, one JSON object per line on .agents/scheduler.sock (0600 inside the 0700 .agents/; the daemon also
checks the peer's uid):
  {"op": "expect", "chains": [...], "env": {...}}  -> {"ok": true}   before publishing: whose environment
  {"op": "wait", "ids": [...], "chains": [...], "env": {...}} -> {"done": true} once every id has its record
  {"op": "status"} -> {"pid", "since", "idle_timeout", "socket", ...};  {"op": "stop"} -> {"ok": true}
Either side may answer {"stale": true} (the daemon's code or agents.toml changed: it is exiting).
The environment lives in the daemon's memory only: never written to disk, never logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from letta_cli.core.pids import pid_alive
from letta_cli.store import scheduler_lock
from letta_cli.store.workspace import Workspace

SOCKET_NAME = "scheduler.sock"
DAEMON_MODULE = "letta_cli.app.daemon"
DISABLE_ENV = "AGENTS_DAEMON"  # "0": no daemon, serve in-process
START_SECONDS = 15.0  # how long a sender waits for a daemon it started (imports on a loaded 2-core box)
RETRY_SECONDS = 0.01
POLL_SECONDS = 0.05  # how often a waiting sender calls on_poll (progress) and checks its deadline

_spawned: dict[Path, subprocess.Popen[bytes]] = {}  # daemons this process started, by workspace root

Waited = Literal["done", "timeout", "unavailable"]


def enabled(ws: Workspace) -> bool:
    return os.environ.get(DISABLE_ENV, "1").strip() != "0" and ws.config.limits.daemon_idle_timeout > 0


def socket_path(ws: Workspace) -> Path:
    return ws.state_dir / SOCKET_NAME


@contextlib.contextmanager
def address(path: Path) -> Iterator[str]:
    """A connectable name for `path`: unix socket names are limited to ~107 bytes, so a long one is reached
    through its folder's descriptor (/proc/self/fd/N/name, Linux)."""
    if len(os.fsencode(path)) < 100 or not os.path.isdir("/proc/self/fd"):
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _connect(ws: Workspace) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with address(socket_path(ws)) as addr:
            sock.connect(addr)
        return sock
    except OSError:
        sock.close()
        return None


def _holder(ws: Workspace) -> Literal["free", "daemon", "other"]:
    """Who holds the scheduler lock: nobody, a daemon (or one starting), or another scheduler (`agents run`,
    a sender serving in-process)."""
    if not ws.state_dir.is_dir() or not scheduler_lock.is_held(ws):
        return "free"
    pid = scheduler_lock.holder_pid(ws)
    kind = None if pid is None else _kind(pid)
    return "other" if kind == "other" else "daemon"  # "gone": exiting, or its pid file is not written yet


def is_daemon(pid: int) -> bool:
    """Is process `pid` a scheduler daemon? (Its command line says so; Linux /proc.)"""
    return _kind(pid) == "daemon"


def _kind(pid: int) -> Literal["daemon", "other", "gone"]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return "gone" if os.path.isdir("/proc/self") else "other"
    if argv == [b""]:  # a zombie: it has exited
        return "gone"
    return "daemon" if DAEMON_MODULE.encode() in argv else "other"


def spawn(ws: Workspace) -> subprocess.Popen[bytes]:
    """Start a daemon for `ws` (in its own session, detached from our terminal) unless this process already
    started one that still runs. It inherits our environment: the default for messages nobody announced."""
    proc = _spawned.get(ws.root)
    if proc is not None and proc.poll() is None:
        return proc
    ws.ensure_state()
    proc = subprocess.Popen(
        # -P: never import from the workspace folder (a cloned repository may hold anything)
        [sys.executable, "-P", "-m", DAEMON_MODULE, str(ws.root)],
        cwd=ws.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _spawned[ws.root] = proc
    return proc


def link(ws: Workspace, *, start: bool) -> socket.socket | None:
    """A connection to the workspace's daemon; with `start`, start one if no scheduler runs. None: no daemon
    (another kind of scheduler serves, or ours did not come up): the caller serves as before."""
    give_up = time.monotonic() + START_SECONDS
    mine: subprocess.Popen[bytes] | None = None
    while True:
        sock = _connect(ws)
        if sock is not None:
            return sock
        holder = _holder(ws)
        if holder == "other":
            return None
        if holder == "free":
            if not start or (mine is not None and mine.poll() is not None):  # the one we started is gone
                return None
            mine = spawn(ws)
        if time.monotonic() > give_up:
            return None
        time.sleep(RETRY_SECONDS)


def _env() -> dict[str, str]:
    return dict(os.environ)


def _call(sock: socket.socket, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send one request and read one answer; None if the daemon went away."""
    try:
        sock.sendall(json.dumps(request).encode() + b"\n")
        return _read(sock, None)
    except OSError:
        return None


def _read(sock: socket.socket, timeout: float | None, buffer: bytearray | None = None) -> dict[str, Any] | None:
    buf = bytearray() if buffer is None else buffer
    while b"\n" not in buf:
        if timeout is not None and not select.select([sock], [], [], timeout)[0]:
            raise TimeoutError
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def announce(ws: Workspace, chains: list[str], *, start: bool) -> None:
    """Before publishing: tell a running daemon whose environment these chains' turns use, so it never
    claims one with another's. With `start` and no scheduler running, start a daemon now, so that its start
    overlaps our publish (it inherits our environment: nothing to announce)."""
    if not enabled(ws):
        return
    sock = _connect(ws)
    if sock is None:
        if start and _holder(ws) == "free":
            spawn(ws)
        return
    with sock:
        _call(sock, {"op": "expect", "chains": chains, "env": _env()})


def wait(
    ws: Workspace,
    ids: list[str],
    chains: list[str],
    deadline: float | None,
    on_poll: Callable[[], None] | None,
) -> Waited:
    """Wait on the daemon for every id's turn record. "unavailable": no daemon (serve in-process). A daemon
    that dies meanwhile (kill -9) is started again and asked again: the queue still holds the messages."""
    request = json.dumps({"op": "wait", "ids": ids, "chains": chains, "env": _env()}).encode() + b"\n"
    while True:
        sock = link(ws, start=True)
        if sock is None:
            return "unavailable"
        with sock:
            try:
                sock.sendall(request)
                buffer = bytearray()
                while True:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return "timeout"
                    try:
                        answer = _read(sock, POLL_SECONDS if left is None else min(POLL_SECONDS, left), buffer)
                    except TimeoutError:
                        if on_poll is not None:
                            on_poll()
                        continue
                    break
            except OSError:
                answer = None
        if answer is not None and answer.get("done"):
            return "done"
        # the daemon went away or is retiring (stale): find or start the next one


def _ask(ws: Workspace, *requests: dict[str, Any]) -> list[dict[str, Any] | None] | None:
    """Each request's answer, in turn, over one short connection; None if no daemon answers the call."""
    sock = _connect(ws) if ws.state_dir.is_dir() else None
    if sock is None:
        return None
    with sock:
        sock.settimeout(5)
        return [_call(sock, request) for request in requests]


def status(ws: Workspace) -> dict[str, Any] | None:
    """What the running daemon says of itself, or None if none answers."""
    answer = (_ask(ws, {"op": "status"}) or [None])[0]
    return answer if answer and "pid" in answer else None


def stop(ws: Workspace) -> dict[str, Any] | None:
    """Ask the daemon to stop (its running turns are cancelled and stay queued); what it was, or None."""
    info, answer = _ask(ws, {"op": "status"}, {"op": "stop"}) or (None, None)
    if not info or not answer or not answer.get("ok"):
        return None
    pid = info.get("pid")
    give_up = time.monotonic() + 10
    while isinstance(pid, int) and pid_alive(pid) and scheduler_lock.is_held(ws) and time.monotonic() < give_up:
        time.sleep(RETRY_SECONDS)
    return info
